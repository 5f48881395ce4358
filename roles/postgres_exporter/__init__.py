"""postgres_exporter: PostgreSQL metrics (Debian's prometheus-postgres-exporter).

Connects as a dedicated login role with pg_monitor, which it declares to the postgres role on
the same host (see README). The password comes from secrets through DATA_SOURCE_PASS_FILE, so
it is in no argv, environment or config file.
"""

from __future__ import annotations

from pyinfra.api import deploy

from keel.core.roles import Declaration, Role
from keel.core.secrets import SecretFile
from keel.deploy.exporter import Exporter
from roles.postgres_exporter.schema import Settings

EXPORTER = Exporter(role="postgres_exporter", label="postgres exporter", job="postgres",
                    service="prometheus-postgres-exporter")


def secrets(settings: Settings) -> list[SecretFile]:
    return [SecretFile(dest="postgres_exporter/password",
                       secret=settings.postgres_exporter_password_secret,
                       owner="prometheus", group="prometheus", mode="0400",
                       named_by={settings.postgres_exporter_password_secret:
                                 "postgres_exporter_password_secret"})]


def declares(settings: Settings, offers: dict) -> list[Declaration]:
    """The exporter's login: pg_monitor reads every statistic it reports, and nothing else."""
    return [Declaration(role="postgres", key="postgres_roles", item={
        "name": settings.postgres_exporter_user,
        "password_secret": settings.postgres_exporter_password_secret,
        "member_of": ["pg_monitor"]})]


@deploy("postgres_exporter")
def apply(settings: Settings) -> None:
    EXPORTER.install(settings, *secrets(settings))


ROLE = Role(name="postgres_exporter", settings=Settings, apply=apply, groups=("db",),
            ports=EXPORTER.ports, metrics=EXPORTER.metrics, secrets=secrets, declares=declares)
