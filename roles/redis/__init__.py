"""redis: redis-server 7.0 from Debian; ACL users with hashed passwords from secrets, the default
user off, protected mode, memory limit and eviction, RDB/AOF persistence, dangerous commands off."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, systemd

from keel.data import settings
from keel.facts import MemTotal
from keel.ops import config_file, service
from keel.schema import PortRule, size_bytes
from keel.secrets import SecretFile, deliver
from roles.redis.schema import Schema, cross_check  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Addresses redis listens on ('-' before one: skip it if absent); None: 127.0.0.1, -::1
    # and the host's keel_address.
    "redis_bind": None,
    # TCP port.
    "redis_port": 6379,
    # Sources the firewall lets reach the port: CIDRs or "group:<name>"; empty allows any.
    "redis_sources": ["group:app"],
    # maxmemory (e.g. '2GB'); None: half of the host's memory.
    "redis_maxmemory": None,
    # Eviction policy once maxmemory is reached.
    "redis_maxmemory_policy": "allkeys-lru",
    # RDB snapshot points ("<seconds> <changes>"); [] turns RDB off.
    "redis_save": ["3600 1", "300 100", "60 10000"],
    # Append-only file (AOF) persistence.
    "redis_appendonly": False,
    # AOF fsync policy: always, everysec or no.
    "redis_appendfsync": "everysec",
    # ACL users: [{name, password_secret, keys?: ['~*'], channels?: ['&*'],
    # commands?: ['+@all']}]; redis_disabled_commands are taken from every user.
    "redis_users": [],
    # Password secret of the default user; None: the default user is off (no unauthenticated
    # access at all).
    "redis_default_password_secret": None,
    # Commands no user may run (ACL rules appended to every user; 'config|set' form allowed).
    "redis_disabled_commands": [
        "FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "SHUTDOWN", "MONITOR", "KEYS", "MODULE",
        "REPLICAOF", "SLAVEOF", "MIGRATE", "FAILOVER", "ACL|SETUSER", "ACL|DELUSER",
        "ACL|LOAD", "ACL|SAVE",
    ],
    # Other redis.conf directives (name: value).
    "redis_settings": {},
}

USERS = "redis/users.conf"


def ports(data: Schema) -> list[PortRule]:
    return [PortRule(port=data.redis_port, sources=data.redis_sources, comment="redis")]


def _sha256(password: str) -> str:
    # One trailing newline is not part of a secret.
    return hashlib.sha256(password.removesuffix("\n").encode()).hexdigest()


def secrets(data: Schema) -> list[SecretFile]:
    """The ACL users, with SHA-256 hashes of their passwords (Redis takes '#<hash>'): a file
    derived from secrets, so it lives under /run/keel/secrets and is included by redis.conf."""
    default = data.redis_default_password_secret
    return [SecretFile(
        dest=USERS, template="redis/users.conf.j2", owner="redis", group="redis",
        uses=tuple(dict.fromkeys([u.password_secret for u in data.redis_users]
                                 + ([default] if default else []))),
        named_by={**({default: "redis_default_password_secret"} if default else {}),
                  **{u.password_secret: f"redis_users[{i}].password_secret"
                     for i, u in enumerate(data.redis_users)}},
        context={"users": data.redis_users, "default_secret": default, "sha256": _sha256,
                 # Last on each user's line, so no earlier rule can re-enable them.
                 "disabled": " ".join(f"-{c.lower()}" for c in data.redis_disabled_commands)})]


def _size(n: int) -> str:
    for unit, factor in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


@deploy("redis")
def apply() -> None:
    data = settings("redis")
    address = host.data.get("keel_address")
    bind = data.redis_bind or ["127.0.0.1", "-::1", *([address] if address else [])]
    maxmemory = size_bytes(data.redis_maxmemory) if data.redis_maxmemory \
        else host.get_fact(MemTotal) // 2
    apt.packages(name="Install redis-server", packages=["redis-server"], no_recommends=True)
    (users,) = secrets(data)
    acl = deliver(name="Deliver ACL users (password hashes)", file=users)
    unit = config_file("redis", "keel.conf", "/etc/systemd/system/redis-server.service.d/keel.conf",
                       name="Start redis-server after keel-secrets")
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    conf = config_file("redis", "redis.conf", "/etc/redis/redis.conf", user="root",
                       group="redis", mode="0640", name="Write redis.conf", bind=bind,
                       maxmemory=_size(maxmemory), users=users.path)
    service(name="Enable redis-server at boot", service="redis-server", running=None,
            enabled=True)
    # Redis has no reload; a restart keeps the data when persistence is on.
    systemd.service(name="Restart redis-server", service="redis-server", restarted=True,
                    _if=lambda: conf.did_change() or acl.did_change() or unit.did_change())
    service(name="Start redis-server", service="redis-server", running=True)
