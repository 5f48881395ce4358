"""Schema for base's data."""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from keel.schema import Memory, Model, Name, PortRule, RoleData, Source

SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519@", "sk-ecdsa-sha2-")


def _timezone(value: str) -> str:
    if value not in zoneinfo.available_timezones():
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
    """Firewall sources that name a group must name one that has hosts; locking the default
    user needs an admin to log in instead."""
    from keel.data import Problem

    groups = {group for host in hosts for group in host.groups}
    problems = []
    for host in hosts:
        problems.extend(_default_user_problems(host, Problem))
        for key in ("base_firewall_ports", "base_sshd_sources"):
            for item in host.values.get(key) or []:
                sources = item.get("sources", []) if isinstance(item, dict) else [item]
                for source in sources:
                    if isinstance(source, str) and source.startswith("group:") \
                            and source[6:] not in groups:
                        problems.append(Problem(host.name, key, host.sources[key],
                                                f"'{source}' names a group with no hosts"))
    return problems


def _default_user_problems(host, Problem) -> list:
    default = host.values.get("base_default_user")
    admins = [user.get("name") for user in host.values.get("base_admin_users") or []
              if isinstance(user, dict) and user.get("state", "present") == "present"]
    if not default:
        return []
    if default in admins:
        return [Problem(host.name, "base_default_user", host.sources["base_default_user"],
                        f"'{default}' is also in base_admin_users; the admin must be another "
                        "user")]
    if host.values.get("base_default_user_lock") and not admins:
        return [Problem(host.name, "base_default_user", host.sources["base_default_user"],
                        f"'{default}' is to be locked (base_default_user_lock) but "
                        "base_admin_users has no admin: nobody could log in")]
    return []
