"""Schema for base's data."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from keel.schema import Memory, Model, Name, PortRule, RoleData, Source

SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519@", "sk-ecdsa-sha2-")


# Reading the zone list walks /usr/share/zoneinfo: once per process, not once per host.
_zones = cache(zoneinfo.available_timezones)


def _timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError("expected an IANA timezone such as 'UTC' or 'Europe/Berlin'")
    return value


def _ssh_key(value: str) -> str:
    if not value.startswith(SSH_KEY_TYPES) or len(value.split()) < 2:
        raise ValueError("expected an SSH public key line such as 'ssh-ed25519 AAAA... me@host'")
    return value


SshKey = Annotated[str, AfterValidator(_ssh_key)]


class AdminUser(Model):
    name: Name
    ssh_keys: Annotated[list[SshKey], Field(min_length=1)]
    shell: str = "/bin/bash"
    state: Literal["present", "absent"] = "present"


class Schema(RoleData):
    base_apt_mirror: Annotated[str, Field(pattern=r"^https?://")]
    base_apt_security_mirror: Annotated[str, Field(pattern=r"^https?://")]
    base_apt_cache_time: Annotated[int, Field(ge=0)]
    base_packages: list[str]
    base_extra_packages: list[str]
    base_hostname: Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9.-]{0,252}$")] | None
    base_timezone: Annotated[str, AfterValidator(_timezone)]
    base_locale: Annotated[str, Field(pattern=r"^[A-Za-z_]+\.(UTF-8|utf8)$")]
    base_ntp_servers: list[str]
    base_journald_max_use: Memory
    base_admin_group: Name
    base_admin_users: list[AdminUser]
    base_default_user: Name | None
    base_default_user_lock: bool
    base_sshd_permit_root_login: Literal["no", "prohibit-password", "forced-commands-only"]
    base_sshd_port: Annotated[int, Field(ge=1, le=65535)]
    base_sshd_sources: list[Source]
    base_firewall_enabled: bool
    base_firewall_ports: list[PortRule]
    base_unattended_upgrades: bool
    base_sysctl: dict[str, int | str]



def cross_check(hosts) -> list:
    """Locking the image's default user needs an admin to log in instead."""
    from keel.data import Problem

    problems = []
    for host in hosts:
        default = host.values.get("base_default_user")
        if "base" not in host.roles or not default:
            continue
        admins = [user.get("name") for user in host.values.get("base_admin_users") or []
                  if isinstance(user, dict) and user.get("state", "present") == "present"]
        source = host.sources["base_default_user"]
        if default in admins:
            problems.append(Problem(host.name, "base_default_user", source,
                                    f"'{default}' is also in base_admin_users; the admin "
                                    "must be another user"))
        elif host.values.get("base_default_user_lock") and not admins:
            problems.append(Problem(host.name, "base_default_user", source,
                                    f"'{default}' is to be locked (base_default_user_lock) "
                                    "but base_admin_users has no admin: nobody could log in"))
    return problems
