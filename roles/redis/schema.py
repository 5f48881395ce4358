"""Schema for redis's data."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from keel.schema import Memory, Model, Port, RoleData, Source

POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
            "volatile-lfu", "volatile-random", "volatile-ttl")

SecretName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
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


class Schema(RoleData):
    redis_bind: list[Annotated[str, AfterValidator(_bind)]] | None
    redis_port: Port
    redis_sources: list[Source]
    redis_maxmemory: Memory | None
    redis_maxmemory_policy: Literal[POLICIES]
    redis_save: list[Annotated[str, Field(pattern=r"^[0-9]+ [0-9]+$")]]
    redis_appendonly: bool
    redis_appendfsync: Literal["always", "everysec", "no"]
    redis_users: Annotated[list[User], AfterValidator(_not_default)]
    redis_default_password_secret: SecretName | None
    redis_disabled_commands: list[Command]
    redis_settings: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")], str | int],
                              AfterValidator(_settings)]


def cross_check(hosts) -> list:
    """redis_sources set in data that name a group must name one that has hosts."""
    from keel.data import group_source_problems

    return group_source_problems(hosts, "redis", "redis_sources",
                                 lambda value: value if isinstance(value, list) else [])
