"""base's settings: each key's type, default and description."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from keel.core.schema import Memory, Model, Name, PortRule, RoleSettings, Source

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


class Settings(RoleSettings):
    base_apt_mirror: Annotated[str, Field(pattern=r"^https?://")] = Field(
        "http://deb.debian.org/debian",
        description="Debian mirror for bookworm and bookworm-updates.",
    )
    base_apt_security_mirror: Annotated[str, Field(pattern=r"^https?://")] = Field(
        "http://deb.debian.org/debian-security",
        description="Debian security mirror (bookworm-security).",
    )
    base_apt_cache_time: Annotated[int, Field(ge=0)] = Field(
        86400,
        description=(
            "Seconds an apt list refresh stays fresh; a run within this window does not update."
        ),
    )
    base_packages: list[str] = Field(
        [
            "ca-certificates",
            "curl",
            "less",
            "netbase",
            "procps",
            "iproute2",
            "nftables",
            "sudo",
            "openssh-server",
            "python3",
            "systemd-timesyncd",
            "tzdata",
            "unattended-upgrades",
        ],
        description="Packages every host gets (installed without Recommends).",
    )
    base_extra_packages: list[str] = Field(
        [], description="More packages for this host or group, on top of base_packages."
    )
    base_hostname: Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9.-]{0,252}$")] | None = (
        Field(None, description="Hostname; None uses the inventory name.")
    )
    base_timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        "UTC", description="IANA timezone name."
    )
    base_locale: Annotated[str, Field(pattern=r"^[A-Za-z_]+\.(UTF-8|utf8)$")] = Field(
        "C.UTF-8",
        description=(
            "System locale (LANG). C.UTF-8 needs no generation; others are generated with locales."
        ),
    )
    base_ntp_servers: list[str] = Field(
        ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"],
        description="NTP servers for systemd-timesyncd.",
    )
    base_journald_max_use: Memory = Field(
        "200M", description="Cap on the journal's disk use (journald SystemMaxUse)."
    )
    base_admin_group: Name = Field(
        "admins", description="Group whose members are admins (passwordless sudo, SSH allowed)."
    )
    base_admin_users: list[AdminUser] = Field(
        [],
        description=(
            "Admin users: [{name, ssh_keys: [..], shell?: /bin/bash, state?: present|absent}]."
        ),
    )
    base_default_user: Name | None = Field(
        None,
        description=(
            "The image's default user (cloud-init's; \"debian\" on Debian cloud images); "
            "None: none."
        ),
    )
    base_default_user_lock: bool = Field(
        True,
        description=(
            "Lock the default user once the admins exist: no SSH keys, no password, denied by sshd."
        ),
    )
    base_sshd_permit_root_login: Literal["no", "prohibit-password", "forced-commands-only"] = Field(
        "prohibit-password",
        description='sshd PermitRootLogin: "no", "prohibit-password" or "forced-commands-only".',
    )
    base_sshd_port: Annotated[int, Field(ge=1, le=65535)] = Field(
        22, description="Port sshd listens on (the firewall opens it)."
    )
    base_sshd_sources: list[Source] = Field(
        [], description='Sources allowed to reach sshd: CIDRs or "group:<name>"; empty allows any.'
    )
    base_firewall_enabled: bool = Field(
        True, description="Deny inbound traffic except what roles declare (nftables)."
    )
    base_firewall_ports: list[PortRule] = Field(
        [],
        description=(
            "Extra inbound ports: [{port, proto?: tcp|udp, sources?: [CIDR|group:<name>], "
            "comment?}]."
        ),
    )
    base_unattended_upgrades: bool = Field(
        True, description="Install security upgrades automatically (unattended-upgrades)."
    )
    base_sysctl: dict[str, int | str] = Field(
        {
            "kernel.kptr_restrict": 2,
            "kernel.dmesg_restrict": 1,
            "kernel.unprivileged_bpf_disabled": 1,
            "fs.protected_hardlinks": 1,
            "fs.protected_symlinks": 1,
            "net.ipv4.tcp_syncookies": 1,
            "net.ipv4.conf.all.rp_filter": 1,
            "net.ipv4.conf.default.rp_filter": 1,
            "net.ipv4.conf.all.accept_redirects": 0,
            "net.ipv4.conf.default.accept_redirects": 0,
            "net.ipv4.conf.all.send_redirects": 0,
            "net.ipv4.conf.all.accept_source_route": 0,
            "net.ipv6.conf.all.accept_redirects": 0,
        },
        description=(
            "Kernel hardening (sysctl.d); applied where /proc/sys is writable (not in containers)."
        ),
    )


def cross_check(hosts) -> list:
    """Locking the image's default user needs an admin to log in instead."""
    from keel.core.data import Problem

    problems = []
    for host in hosts:
        default = host.values.get("base_default_user")
        if "base" not in host.roles or not default:
            continue
        admins = [
            user.get("name")
            for user in host.values.get("base_admin_users") or []
            if isinstance(user, dict) and user.get("state", "present") == "present"
        ]
        source = host.sources["base_default_user"]
        if default in admins:
            problems.append(
                Problem(
                    host.name,
                    "base_default_user",
                    source,
                    f"'{default}' is also in base_admin_users; the admin must be another user",
                )
            )
        elif host.values.get("base_default_user_lock") and not admins:
            problems.append(
                Problem(
                    host.name,
                    "base_default_user",
                    source,
                    f"'{default}' is to be locked (base_default_user_lock) "
                    "but base_admin_users has no admin: nobody could log in",
                )
            )
    return problems
