"""Defaults for every environment. Role defaults live in roles/<name>/__init__.py.

Layers, later wins: role DEFAULTS, this file, group_data/<env>.py, group_data/<group>.py, the
host's data in inventories/<env>.py. Set a key in one layer only where you can.
"""

# keel connects as root with a key: base's sshd allows root by key only (prohibit-password),
# and files that carry secrets are written without a world-readable temporary copy.
ssh_user = "root"
