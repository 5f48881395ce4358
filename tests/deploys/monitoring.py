"""Test deploy: the monitoring roles with the servers they watch (keel's postgres and redis
roles, whose data from group_data creates the exporters' logins) and edge, whose alerts
Prometheus loads. The rest of the site (storage, app, containers) is left out to keep it fast."""

from keel.deploy.site import apply_role

for role in ("base", "secrets", "postgres", "redis", "edge", "node_exporter",
             "postgres_exporter", "redis_exporter", "alertmanager", "prometheus"):
    apply_role(role)
