"""redis_exporter: Redis metrics (Debian's prometheus-redis-exporter).

Connects with its own ACL user, which it declares to the redis role on the same host (see
README). redis_exporter 1.45 reads passwords from `--redis.password-file`, a JSON map of
server URI to password: keel renders it into tmpfs as a secret file.
"""

from __future__ import annotations

from pyinfra.api import deploy

from keel.core.roles import Declaration, Role
from keel.core.secrets import SecretFile
from keel.deploy.exporter import Exporter
from roles.redis_exporter.schema import Settings

EXPORTER = Exporter(role="redis_exporter", label="redis exporter", job="redis",
                    service="prometheus-redis-exporter")


def secrets(settings: Settings) -> list[SecretFile]:
    return [SecretFile(dest="redis_exporter/passwords.json",
                       template="redis_exporter/passwords.json.j2",
                       uses=(settings.redis_exporter_password_secret,),
                       context={"server": settings.redis_exporter_server,
                                "name": settings.redis_exporter_password_secret},
                       owner="prometheus", group="prometheus", mode="0400",
                       named_by={settings.redis_exporter_password_secret:
                                 "redis_exporter_password_secret"})]


def declares(settings: Settings, offers: dict) -> list[Declaration]:
    """The exporter's ACL user: what its default scrape runs (INFO, LATENCY LATEST, SLOWLOG
    GET/LEN, CLIENT SETNAME), on no keys and no channels. CONFIG GET is taken from every user
    by redis_disabled_commands; the exporter then reads maxmemory from INFO. Key checks
    (--check-keys and the like) need more commands and keys."""
    return [Declaration(role="redis", key="redis_users", item={
        "name": settings.redis_exporter_user,
        "password_secret": settings.redis_exporter_password_secret,
        "keys": [], "channels": [],
        "commands": ["-@all", "+auth", "+ping", "+client|setname", "+info", "+latency|latest",
                     "+slowlog|get", "+slowlog|len"]})]


@deploy("redis_exporter")
def apply(settings: Settings) -> None:
    EXPORTER.install(settings, *secrets(settings))


ROLE = Role(name="redis_exporter", settings=Settings, apply=apply, groups=("cache",),
            ports=EXPORTER.ports, metrics=EXPORTER.metrics, secrets=secrets, declares=declares)
