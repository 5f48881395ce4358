"""Defaults for every environment. Role defaults live in roles/<name>/__init__.py.

Layers, later wins: role DEFAULTS, this file, group_data/<env>.py, group_data/<group>.py, the
host's data in inventories/<env>.py. Set a key in one layer only where you can.
"""

from roles import postgres_exporter, redis_exporter

# keel connects as root with a key: base's sshd allows root by key only (prohibit-password),
# and files that carry secrets are written without a world-readable temporary copy.
ssh_user = "root"

# The exporters' logins on the data services: the postgres role creates keel_monitor
# (pg_monitor) on db hosts, the redis role the ACL user keel_exporter on cache hosts; their
# passwords are the secrets postgres_monitor_password and redis_exporter_password. A later
# layer replaces a key whole: an environment or group that sets postgres_roles or redis_users
# lists these entries too.
postgres_roles = [postgres_exporter.POSTGRES_ROLE]
redis_users = [redis_exporter.REDIS_USER]
