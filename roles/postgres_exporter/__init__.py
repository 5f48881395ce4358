"""postgres_exporter: PostgreSQL metrics (Debian's prometheus-postgres-exporter).

Connects as a dedicated login role with pg_monitor, which the postgres role creates from its
own data (see README: the data contract). The password comes from secrets through
DATA_SOURCE_PASS_FILE, so it is in no argv, environment or config file.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, systemd
from pyinfra.operations.util import any_changed

from keel.data import settings
from keel.monitoring import Endpoint, service_after_secrets
from keel.ops import config_file, service
from keel.schema import PortRule
from keel.secrets import SecretFile, deliver
from roles.postgres_exporter.schema import Schema  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Port the exporter listens on (on keel_address).
    "postgres_exporter_port": 9187,
    # Who may scrape it: CIDRs or "group:<name>".
    "postgres_exporter_sources": ["group:mon"],
    # PostgreSQL server to watch, host:port (the local server over TCP).
    "postgres_exporter_server": "127.0.0.1:5432",
    # Database to connect to.
    "postgres_exporter_database": "postgres",
    # libpq sslmode of the connection (lib/pq's default, require, fails on a plain server).
    "postgres_exporter_sslmode": "disable",
    # Login role the exporter connects as (a member of pg_monitor).
    "postgres_exporter_user": "keel_monitor",
    # Secret holding that role's password.
    "postgres_exporter_password_secret": "postgres_monitor_password",
    # More exporter flags.
    "postgres_exporter_extra_args": [],
}

SERVICE = "prometheus-postgres-exporter"


def ports(data: Schema) -> list[PortRule]:
    return [PortRule(port=data.postgres_exporter_port, sources=data.postgres_exporter_sources,
                     comment="postgres exporter")]


def metrics(data: Schema) -> list[Endpoint]:
    return [Endpoint(job="postgres", port=data.postgres_exporter_port)]


def secrets(data: Schema) -> list[SecretFile]:
    return [SecretFile(dest="postgres_exporter/password",
                       secret=data.postgres_exporter_password_secret,
                       owner="prometheus", group="prometheus", mode="0400",
                       named_by={data.postgres_exporter_password_secret:
                                 "postgres_exporter_password_secret"})]


@deploy("postgres_exporter")
def apply() -> None:
    data = settings("postgres_exporter")
    apt.packages(name="Install postgres exporter", packages=["prometheus-postgres-exporter"],
                 no_recommends=True)
    (password,) = secrets(data)
    secret = deliver(name="Deliver postgres exporter password", file=password)
    env = config_file(
        "postgres_exporter", "default", f"/etc/default/{SERVICE}", mode="0644",
        name="Configure postgres exporter", password_file=password.path,
        listen=f"{host.data.keel_address}:{data.postgres_exporter_port}")
    unit = service_after_secrets(SERVICE)
    service(name="Run postgres exporter", service=SERVICE, running=True, enabled=True,
            daemon_reload=unit.will_change)
    systemd.service(name="Restart postgres exporter", service=SERVICE, restarted=True,
                    _if=any_changed(env, secret, unit))
