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

# What OpenSSH 9.2 (bookworm) offers, minus what ssh-baseline calls weak (CBC, 3DES, SHA-1,
# 64-bit-tag UMAC, SHA-1 and small-group Diffie-Hellman). Data may only narrow these lists.
SSHD_ALGORITHMS = {
    "ciphers": ("chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com",
                "aes128-gcm@openssh.com", "aes256-ctr", "aes192-ctr", "aes128-ctr"),
    "macs": ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
             "umac-128-etm@openssh.com", "hmac-sha2-512", "hmac-sha2-256"),
    "kex": ("sntrup761x25519-sha512@openssh.com", "curve25519-sha256",
            "curve25519-sha256@libssh.org", "diffie-hellman-group16-sha512",
            "diffie-hellman-group18-sha512", "diffie-hellman-group-exchange-sha256"),
}


def _algorithms(kind: str):
    strong = SSHD_ALGORITHMS[kind]

    def check(value: list[str]) -> list[str]:
        kept = [name for name in value if name in strong]
        if not kept:
            dropped = ", ".join(value) or "nothing"
            raise ValueError(f"no {kind} left after filtering ({dropped} given): sshd would "
                             f"refuse every client; pick from {', '.join(strong)}")
        return kept

    return AfterValidator(check)


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
    base_sshd_ciphers: Annotated[list[str], _algorithms("ciphers")] = Field(
        list(SSHD_ALGORITHMS["ciphers"]),
        description="sshd Ciphers (ssh-baseline); weak ones dropped, none left fails.",
    )
    base_sshd_macs: Annotated[list[str], _algorithms("macs")] = Field(
        list(SSHD_ALGORITHMS["macs"]),
        description="sshd MACs (ssh-baseline); names it calls weak are dropped, none left fails.",
    )
    base_sshd_kex: Annotated[list[str], _algorithms("kex")] = Field(
        list(SSHD_ALGORITHMS["kex"]),
        description="sshd KexAlgorithms (ssh-baseline); weak ones dropped, none left fails.",
    )
    base_sshd_max_auth_tries: Annotated[int, Field(ge=1, le=10)] = Field(
        3, description="sshd MaxAuthTries."
    )
    base_sshd_max_sessions: Annotated[int, Field(ge=1, le=100)] = Field(
        10, description="sshd MaxSessions (pyinfra multiplexes a few sessions per connection)."
    )
    base_sshd_client_alive_interval: Annotated[int, Field(ge=0)] = Field(
        300, description="sshd ClientAliveInterval (seconds)."
    )
    base_sshd_client_alive_count: Annotated[int, Field(ge=0)] = Field(
        2, description="sshd ClientAliveCountMax."
    )
    base_sshd_login_grace_time: Annotated[int, Field(ge=5)] = Field(
        30, description="sshd LoginGraceTime (seconds)."
    )
    base_sshd_tcp_forwarding: bool = Field(False, description="sshd AllowTcpForwarding.")
    base_sshd_agent_forwarding: bool = Field(False, description="sshd AllowAgentForwarding.")
    base_sshd_x11_forwarding: bool = Field(False, description="sshd X11Forwarding.")
    base_sshd_log_level: Literal["INFO", "VERBOSE"] = Field(
        "VERBOSE", description="sshd LogLevel (VERBOSE logs key fingerprints)."
    )
    base_sshd_allow_groups: list[Name] | None = Field(
        None,
        description=(
            "sshd AllowGroups. None: the admin group, plus root unless PermitRootLogin is no; "
            "[]: no AllowGroups line."
        ),
    )
    base_banner: str = Field(
        "Authorised access only. Activity on this system is logged and may be monitored.",
        description="Legal banner for /etc/issue, /etc/issue.net and sshd Banner; \"\": none.",
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
    base_security_updates: bool = Field(
        True,
        description="Apply pending security updates at each converge (the first one included).",
    )
    base_metrics_dir: Annotated[str, Field(pattern=r"^/.+")] = Field(
        "/var/lib/prometheus/node-exporter",
        description="Where base writes its textfile metrics (the node exporter reads them).",
    )
    base_login_defs: dict[str, int | str] = Field(
        {"PASS_MIN_DAYS": 1, "PASS_WARN_AGE": 7,
         "ENCRYPT_METHOD": "YESCRYPT", "YESCRYPT_COST_FACTOR": 8},
        description=(
            "login.defs keys over Debian's (password ageing, hashing); {}: Debian's. "
            "PASS_MAX_DAYS stays off: an expired password blocks key logins too."
        ),
    )
    base_umask: Annotated[str, Field(pattern=r"^0?[0-7]{3}$")] | None = Field(
        "027", description="Default umask of logins (login.defs UMASK, pam_umask); None: 022."
    )
    base_pwquality: dict[str, int] = Field(
        {"minlen": 14, "minclass": 4, "retry": 3},
        description="pam_pwquality settings (libpam-pwquality); {}: no password-quality module.",
    )
    base_lock_system_accounts: bool = Field(
        True, description="System accounts (uid < 1000 but root) get nologin and a locked password."
    )
    base_core_dumps: bool = Field(
        False, description="Allow core dumps; False: off by limits, sysctl and systemd-coredump."
    )
    base_blacklisted_modules: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]+$")]] = Field(
        ["dccp", "sctp", "rds", "tipc", "cramfs", "freevxfs", "hfs", "hfsplus", "udf",
         "usb-storage", "firewire-core"],
        description="Kernel modules that may not load (modprobe install /bin/false); []: none.",
    )
    base_audit: bool = Field(
        True, description="auditd with keel's baseline rules, where the kernel offers audit."
    )
    base_audit_max_log_file: Annotated[int, Field(ge=1)] = Field(
        8, description="auditd max_log_file (MB) before it rotates."
    )
    base_audit_num_logs: Annotated[int, Field(ge=2, le=99)] = Field(
        5, description="auditd num_logs kept by rotation."
    )
    base_integrity: bool = Field(
        True, description="debsums and AIDE on a timer, with metrics and alerts."
    )
    base_integrity_schedule: str = Field(
        "daily", description="systemd OnCalendar of the integrity and update-state check."
    )
    base_aide_paths: list[Annotated[str, Field(pattern=r"^/.+")]] = Field(
        ["/usr/bin", "/usr/sbin", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d", "/etc/pam.d"],
        description=(
            "What AIDE watches (small: its first scan is on converge). Package installs "
            "re-baseline it (debsums covers package files)."
        ),
    )
    base_cron_allow: list[Name] = Field(
        ["root"], description="Users in /etc/cron.allow and /etc/at.allow; []: not managed."
    )
    base_tmp_options: list[Literal["nosuid", "nodev", "noexec"]] = Field(
        ["nosuid", "nodev"], description="Mount options /tmp gets where it is a mount; []: none."
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
            "net.ipv6.conf.default.accept_redirects": 0,
            "net.ipv4.conf.default.send_redirects": 0,
            "net.ipv4.conf.default.accept_source_route": 0,
            "net.ipv4.conf.all.secure_redirects": 0,
            "net.ipv4.conf.default.secure_redirects": 0,
            "net.ipv4.conf.all.log_martians": 1,
            "net.ipv4.conf.default.log_martians": 1,
            "net.ipv4.icmp_echo_ignore_broadcasts": 1,
            "net.ipv4.icmp_ignore_bogus_error_responses": 1,
            "kernel.randomize_va_space": 2,
            "kernel.yama.ptrace_scope": 1,
            "kernel.sysrq": 0,
            "kernel.kexec_load_disabled": 1,
        },
        description=(
            "Kernel hardening (sysctl.d); applied where /proc/sys is writable (not in containers)."
        ),
    )


def allow_groups(settings) -> list[str]:
    """sshd AllowGroups: the data's list, else the admin group (and root where root may log
    in)."""
    if settings.base_sshd_allow_groups is not None:
        return settings.base_sshd_allow_groups
    root = [] if settings.base_sshd_permit_root_login == "no" else ["root"]
    return [*root, settings.base_admin_group]


def cross_check(hosts) -> list:
    """Settings that would lock keel or the admins out, refused before any host is touched."""
    return _default_user_checks(hosts) + _lockout_checks(hosts)


def _lockout_checks(hosts) -> list:
    from keel.core.data import Problem

    problems = []
    for host in hosts:
        if "base" not in host.roles:
            continue
        values = host.values
        connects_as = values.get("ssh_user") or "root"
        if values.get("base_sshd_permit_root_login") == "no" and connects_as == "root":
            problems.append(Problem(
                host.name, "base_sshd_permit_root_login",
                host.sources.get("base_sshd_permit_root_login", ""),
                "'no' but the inventory connects as root (ssh_user): keel would lock itself "
                "out; connect as an admin with sudo first"))
        groups = values.get("base_sshd_allow_groups")
        if not groups:  # None: derived (always names the admin group); []: no AllowGroups
            continue
        source = host.sources.get("base_sshd_allow_groups", "")
        admin_group = values.get("base_admin_group", "admins")
        admins = [u for u in values.get("base_admin_users") or []
                  if isinstance(u, dict) and u.get("state", "present") == "present"]
        if admins and admin_group not in groups:
            problems.append(Problem(
                host.name, "base_sshd_allow_groups", source,
                f"{groups} does not name the admin group '{admin_group}': "
                "no admin could log in"))
        if connects_as == "root" and "root" not in groups:
            problems.append(Problem(
                host.name, "base_sshd_allow_groups", source,
                f"{groups} does not name 'root', and the inventory connects as root "
                "(ssh_user): keel would lock itself out"))
    return problems


def _default_user_checks(hosts) -> list:
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
