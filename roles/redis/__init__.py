"""redis: redis-server 7.0 from Debian; ACL users with hashed passwords from secrets, the default
user off, protected mode, memory limit and eviction, RDB/AOF persistence, dangerous commands off."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, systemd

from keel import secrets as keel_secrets
from keel.data import settings
from keel.facts import MemTotal
from keel.ops import config_file, private_file
from keel.schema import PortRule, size_bytes
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

ACL_FILE = "/etc/redis/users.acl"


def ports(data: Schema) -> list[PortRule]:
    return [PortRule(port=data.redis_port, sources=data.redis_sources, comment="redis")]


def secrets(data: Schema) -> list[str]:
    names = [user.password_secret for user in data.redis_users]
    return names + ([data.redis_default_password_secret]
                    if data.redis_default_password_secret else [])


def _size(n: int) -> str:
    for unit, factor in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def _password_hash(secret: str) -> str:
    # Redis ACLs take '#<sha256 hex>', so no plaintext is written to the host. One trailing
    # newline is not part of a secret.
    return "#" + hashlib.sha256(keel_secrets.value(secret).removesuffix("\n").encode()).hexdigest()


def acl_lines(data: Schema) -> list[str]:
    """users.acl: each user reset, then its rules; the disabled commands come last so that no
    earlier rule can re-enable them."""
    disabled = [f"-{c.lower()}" for c in data.redis_disabled_commands]
    lines = []
    if data.redis_default_password_secret:
        lines.append(" ".join(["user default reset on",
                               _password_hash(data.redis_default_password_secret),
                               "~* &* +@all", *disabled]))
    else:
        lines.append("user default reset off")
    for user in data.redis_users:
        lines.append(" ".join(["user", user.name, "reset on", _password_hash(user.password_secret),
                               *user.keys, *user.channels, *user.commands, *disabled]))
    return lines


@deploy("redis")
def apply() -> None:
    data = settings("redis")
    address = host.data.get("keel_address")
    bind = data.redis_bind or ["127.0.0.1", "-::1", *([address] if address else [])]
    maxmemory = size_bytes(data.redis_maxmemory) if data.redis_maxmemory \
        else host.get_fact(MemTotal) // 2
    apt.packages(name="Install redis-server", packages=["redis-server"], no_recommends=True)
    conf = config_file("redis", "redis.conf", "/etc/redis/redis.conf", user="root",
                       group="redis", mode="0640", name="Write redis.conf", bind=bind,
                       maxmemory=_size(maxmemory))
    # Password hashes: written without a diff, readable by redis only.
    acl = private_file(name="Write ACL users", content="\n".join(acl_lines(data)) + "\n",
                       dest=ACL_FILE, user="root", group="redis", mode="0640")
    systemd.service(name="Enable redis-server at boot", service="redis-server", running=None,
                    enabled=True)
    # Redis has no reload; a restart keeps the data when persistence is on.
    systemd.service(name="Restart redis-server", service="redis-server", restarted=True,
                    _if=lambda: conf.did_change() or acl.did_change())
    systemd.service(name="Start redis-server", service="redis-server", running=True)
