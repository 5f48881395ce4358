"""Data for every environment. Group data is plain data: it imports nothing.

Layers, later wins: role defaults (roles/<name>/schema.py), this file, group_data/<env>.py,
group_data/<group>.py, the host's data in inventories/<env>.py. Set a key in one layer only
where you can. Logins the exporters need are not data: they declare them to postgres and
redis (roles/<exporter>/__init__.py).
"""

# keel connects as root with a key: base's sshd allows root by key only (prohibit-password),
# and files that carry secrets are written without a world-readable temporary copy.
ssh_user = "root"

# A host that refuses SSH, or accepts TCP and never answers, fails alone within these
# seconds (TCP connect, SSH banner, authentication) and the others go on. paramiko's own
# defaults would wait up to 15 s for a banner and 30 s for authentication.
ssh_paramiko_connect_kwargs = {"timeout": 10, "banner_timeout": 10, "auth_timeout": 10}
