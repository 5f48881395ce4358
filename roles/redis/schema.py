"""redis's settings: each key's type, default and description."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from keel.core.schema import Memory, Model, Port, RoleSettings, SecretName, Source

POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
            "volatile-lfu", "volatile-random", "volatile-ttl")

# An ACL command rule: +get, -@dangerous, +config|get, allcommands, nocommands.
CommandRule = Annotated[str, Field(pattern=r"^([+-]@?[a-z][a-z0-9_-]*(\|[a-z][a-z0-9_-]*)?|"
                                           r"allcommands|nocommands)$")]
Command = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*(\|[A-Za-z][A-Za-z0-9_-]*)?$")]


def _bind(value: str) -> str:
    try:
        ipaddress.ip_address(value.removeprefix("-"))
    except ValueError:
        raise ValueError("expected an IP address (a leading '-' makes it optional)") from None
    return value


class User(Model):
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,63}$")]
    password_secret: SecretName
    keys: list[Annotated[str, Field(pattern=r"^(%R|%W|%RW)?~\S+$|^allkeys$")]] = ["~*"]
    channels: list[Annotated[str, Field(pattern=r"^&\S+$|^allchannels$")]] = ["&*"]
    commands: list[CommandRule] = ["+@all"]


# Directives with their own key, or that keel must own (auth, files, supervision).
OWN_DIRECTIVES = {"bind", "port", "protected-mode", "aclfile", "requirepass", "user",
                  "rename-command", "maxmemory", "maxmemory-policy", "save", "appendonly",
                  "appendfsync", "dir", "daemonize", "supervised", "pidfile", "include"}


def _settings(value: dict) -> dict:
    for key in value:
        if key in OWN_DIRECTIVES:
            raise ValueError(f"{key!r} is managed by keel (see the redis_* keys)")
    return value


def _not_default(users: list[User]) -> list[User]:
    names = [u.name for u in users]
    if "default" in names:
        raise ValueError("the default user is set by redis_default_password_secret")
    if len(set(names)) != len(names):
        raise ValueError("user names must be unique")
    return users


class Settings(RoleSettings):
    redis_bind: list[Annotated[str, AfterValidator(_bind)]] | None = Field(
        None,
        description=(
            "Addresses redis listens on ('-' before one: skip it if absent); None: "
            "127.0.0.1, -::1 and the host's keel_address."
        ),
    )
    redis_port: Port = Field(6379, description="TCP port.")
    redis_sources: list[Source] = Field(
        ["group:app"],
        description=(
            'Sources the firewall lets reach the port: CIDRs or "group:<name>"; empty allows any.'
        ),
    )
    redis_maxmemory: Memory | None = Field(
        None, description="maxmemory (e.g. '2GB'); None: half of the host's memory."
    )
    redis_maxmemory_policy: Literal[POLICIES] = Field(
        "allkeys-lru", description="Eviction policy once maxmemory is reached."
    )
    redis_save: list[Annotated[str, Field(pattern=r"^[0-9]+ [0-9]+$")]] = Field(
        ["3600 1", "300 100", "60 10000"],
        description='RDB snapshot points ("<seconds> <changes>"); [] turns RDB off.',
    )
    redis_appendonly: bool = Field(False, description="Append-only file (AOF) persistence.")
    redis_appendfsync: Literal["always", "everysec", "no"] = Field(
        "everysec", description="AOF fsync policy: always, everysec or no."
    )
    redis_users: Annotated[list[User], AfterValidator(_not_default)] = Field(
        [],
        description=(
            "ACL users: [{name, password_secret, keys?: ['~*'], channels?: ['&*'], "
            "commands?: ['+@all']}]; redis_disabled_commands are taken from every user."
        ),
    )
    redis_default_password_secret: SecretName | None = Field(
        None,
        description=(
            "Password secret of the default user; None: the default user is off (no "
            "unauthenticated access at all)."
        ),
    )
    redis_disabled_commands: list[Command] = Field(
        [
            "FLUSHALL",
            "FLUSHDB",
            "CONFIG",
            "DEBUG",
            "SHUTDOWN",
            "MONITOR",
            "KEYS",
            "MODULE",
            "REPLICAOF",
            "SLAVEOF",
            "MIGRATE",
            "FAILOVER",
            "ACL|SETUSER",
            "ACL|DELUSER",
            "ACL|LOAD",
            "ACL|SAVE",
        ],
        description=(
            "Commands no user may run (ACL rules appended to every user; 'config|set' "
            "form allowed)."
        ),
    )
    redis_settings: Annotated[
        dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")], str | int],
        AfterValidator(_settings),
    ] = Field({}, description="Other redis.conf directives (name: value).")


def cross_check(hosts) -> list:
    """redis_sources set in data that name a group must name one that has hosts."""
    from keel.core.data import group_source_problems

    return group_source_problems(
        hosts, "redis", "redis_sources", lambda value: value if isinstance(value, list) else []
    )
