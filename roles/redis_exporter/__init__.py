"""redis_exporter: Redis metrics (Debian's prometheus-redis-exporter).

Connects with its own ACL user, which the redis role creates from its own data (see README:
the data contract). redis_exporter 1.45 reads passwords from `--redis.password-file`, a JSON
map of server URI to password: keel renders it into tmpfs as a secret file.
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
from roles.redis_exporter.schema import Schema  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Port the exporter listens on (on keel_address).
    "redis_exporter_port": 9121,
    # Who may scrape it: CIDRs or "group:<name>".
    "redis_exporter_sources": ["group:mon"],
    # Redis server to watch (the local server).
    "redis_exporter_server": "redis://127.0.0.1:6379",
    # ACL user the exporter connects as.
    "redis_exporter_user": "keel_exporter",
    # Secret holding that user's password.
    "redis_exporter_password_secret": "redis_exporter_password",
    # More exporter flags.
    "redis_exporter_extra_args": [],
}

SERVICE = "prometheus-redis-exporter"


def ports(data: Schema) -> list[PortRule]:
    return [PortRule(port=data.redis_exporter_port, sources=data.redis_exporter_sources,
                     comment="redis exporter")]


def metrics(data: Schema) -> list[Endpoint]:
    return [Endpoint(job="redis", port=data.redis_exporter_port)]


def secrets(data: Schema) -> list[SecretFile]:
    return [SecretFile(dest="redis_exporter/passwords.json",
                       template="redis_exporter/passwords.json.j2",
                       uses=(data.redis_exporter_password_secret,),
                       context={"server": data.redis_exporter_server,
                                "name": data.redis_exporter_password_secret},
                       owner="prometheus", group="prometheus", mode="0400",
                       named_by={data.redis_exporter_password_secret:
                                 "redis_exporter_password_secret"})]


@deploy("redis_exporter")
def apply() -> None:
    data = settings("redis_exporter")
    apt.packages(name="Install redis exporter", packages=["prometheus-redis-exporter"],
                 no_recommends=True)
    (passwords,) = secrets(data)
    secret = deliver(name="Deliver redis exporter password", file=passwords)
    env = config_file(
        "redis_exporter", "default", f"/etc/default/{SERVICE}", mode="0644",
        name="Configure redis exporter", password_file=passwords.path,
        listen=f"{host.data.keel_address}:{data.redis_exporter_port}")
    unit = service_after_secrets(SERVICE)
    service(name="Run redis exporter", service=SERVICE, running=True, enabled=True,
            daemon_reload=unit.will_change)
    systemd.service(name="Restart redis exporter", service=SERVICE, restarted=True,
                    _if=any_changed(env, secret, unit))
