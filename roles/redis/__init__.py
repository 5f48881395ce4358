"""redis: redis-server 7.0 from Debian; ACL users with hashed passwords from secrets, the default
user off, protected mode, memory limit and eviction, RDB/AOF persistence, dangerous commands off."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, systemd
from pyinfra.operations.util import any_changed

from keel.core.roles import Role
from keel.core.schema import PortRule, size_bytes
from keel.core.secrets import SecretFile
from keel.deploy.facts import MemTotal
from keel.deploy.ops import config_file, service, start_after
from keel.deploy.secrets import deliver
from roles.redis.schema import Settings, cross_check

USERS = "redis/users.conf"


def ports(settings: Settings) -> list[PortRule]:
    return [PortRule(port=settings.redis_port, sources=settings.redis_sources, comment="redis")]


def _sha256(password: str) -> str:
    # One trailing newline is not part of a secret.
    return hashlib.sha256(password.removesuffix("\n").encode()).hexdigest()


def secrets(settings: Settings) -> list[SecretFile]:
    """The ACL users, with SHA-256 hashes of their passwords (Redis takes '#<hash>'): a file
    derived from secrets, so it lives under /run/keel/secrets and is included by redis.conf."""
    default = settings.redis_default_password_secret
    return [SecretFile(
        dest=USERS, template="redis/users.conf.j2", owner="redis", group="redis",
        uses=tuple(dict.fromkeys([u.password_secret for u in settings.redis_users]
                                 + ([default] if default else []))),
        named_by={**({default: "redis_default_password_secret"} if default else {}),
                  **{u.password_secret: f"redis_users[{i}].password_secret"
                     for i, u in enumerate(settings.redis_users)}},
        context={"users": settings.redis_users, "default_secret": default, "sha256": _sha256,
                 # Last on each user's line, so no earlier rule can re-enable them.
                 "disabled": [f"-{c.lower()}" for c in settings.redis_disabled_commands]})]


def _size(n: int) -> str:
    for unit, factor in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


@deploy("redis")
def apply(settings: Settings) -> None:
    address = host.data.get("keel_address")
    bind = settings.redis_bind or ["127.0.0.1", "-::1", *([address] if address else [])]
    maxmemory = size_bytes(settings.redis_maxmemory) if settings.redis_maxmemory \
        else host.get_fact(MemTotal) // 2
    apt.packages(name="Install redis-server", packages=["redis-server"], no_recommends=True)
    (users,) = secrets(settings)
    acl = deliver(name="Deliver ACL users (password hashes)", file=users)
    unit = start_after(
        "redis-server.service", "redis", ["keel-secrets.service", "network-online.target"],
        name="Start redis-server after keel-secrets",
        why="The ACL users file is decrypted into /run/keel/secrets by keel-secrets.service; "
            "redis binds\nthe host's private address, so it starts once the network is up.")
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    conf = config_file("redis", "redis.conf", "/etc/redis/redis.conf", user="root",
                       group="redis", mode="0640", name="Write redis.conf", bind=bind,
                       maxmemory=_size(maxmemory), users=users.path, settings=settings)
    service(name="Enable redis-server at boot", service="redis-server", running=None,
            enabled=True)
    # Redis has no reload; a restart keeps the data when persistence is on.
    systemd.service(name="Restart redis-server", service="redis-server", restarted=True,
                    _if=any_changed(conf, acl, unit))
    service(name="Start redis-server", service="redis-server", running=True)


ROLE = Role(name="redis", settings=Settings, apply=apply, groups=("cache",), ports=ports,
            secrets=secrets, cross_check=cross_check)
