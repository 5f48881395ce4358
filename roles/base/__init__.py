"""base: what every host gets. apt, identity, time, admins, sshd, firewall, upgrades."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Users
from pyinfra.operations import apt, files, server, systemd

from keel.data import settings
from keel.firewall import firewall_rules
from keel.ops import config_file, managed_file, service
from keel.schema import PortRule
from roles.base.schema import Schema, cross_check  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Debian mirror for bookworm and bookworm-updates.
    "base_apt_mirror": "http://deb.debian.org/debian",
    # Debian security mirror (bookworm-security).
    "base_apt_security_mirror": "http://deb.debian.org/debian-security",
    # Seconds an apt list refresh stays fresh; a run within this window does not update.
    "base_apt_cache_time": 86400,
    # Packages every host gets (installed without Recommends).
    "base_packages": [
        "ca-certificates", "curl", "less", "netbase", "procps", "iproute2", "nftables", "sudo",
        "openssh-server", "python3", "systemd-timesyncd", "tzdata", "unattended-upgrades",
    ],
    # More packages for this host or group, on top of base_packages.
    "base_extra_packages": [],
    # Hostname; None uses the inventory name.
    "base_hostname": None,
    # IANA timezone name.
    "base_timezone": "UTC",
    # System locale (LANG). C.UTF-8 needs no generation; others are generated with locales.
    "base_locale": "C.UTF-8",
    # NTP servers for systemd-timesyncd.
    "base_ntp_servers": ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"],
    # Cap on the journal's disk use (journald SystemMaxUse).
    "base_journald_max_use": "200M",
    # Group whose members are admins (passwordless sudo, SSH allowed).
    "base_admin_group": "admins",
    # Admin users: [{name, ssh_keys: [..], shell?: /bin/bash, state?: present|absent}].
    "base_admin_users": [],
    # The image's default user (cloud-init's; "debian" on Debian cloud images); None: none.
    "base_default_user": None,
    # Lock the default user once the admins exist: no SSH keys, no password, denied by sshd.
    "base_default_user_lock": True,
    # sshd PermitRootLogin: "no", "prohibit-password" or "forced-commands-only".
    "base_sshd_permit_root_login": "prohibit-password",
    # Port sshd listens on (the firewall opens it).
    "base_sshd_port": 22,
    # Sources allowed to reach sshd: CIDRs or "group:<name>"; empty allows any.
    "base_sshd_sources": [],
    # Deny inbound traffic except what roles declare (nftables).
    "base_firewall_enabled": True,
    # Extra inbound ports: [{port, proto?: tcp|udp, sources?: [CIDR|group:<name>], comment?}].
    "base_firewall_ports": [],
    # Install security upgrades automatically (unattended-upgrades).
    "base_unattended_upgrades": True,
    # Kernel hardening (sysctl.d); applied where /proc/sys is writable (not in containers).
    "base_sysctl": {
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
}


def ports(data: Schema) -> list[PortRule]:
    """Inbound ports base needs: sshd, plus the extra ports its data lists."""
    return [PortRule(port=data.base_sshd_port, sources=data.base_sshd_sources, comment="sshd"),
            *data.base_firewall_ports]


@deploy("base")
def apply() -> None:
    data = settings("base")
    _apt(data)
    _identity(data)
    _time(data)
    _admins(data)
    _default_user(data)
    _sshd(data)
    _firewall(data)
    _upgrades(data)


def _apt(data) -> None:
    sources = config_file("base", "debian.sources", "/etc/apt/sources.list.d/debian.sources",
                          name="Set Debian apt sources (main, updates, security)")
    legacy = files.file(name="Remove legacy /etc/apt/sources.list", path="/etc/apt/sources.list",
                        present=False)
    # Refresh when the sources change, otherwise only once the cache is older than cache_time.
    if sources.will_change or legacy.will_change:
        # Touch the stamp that apt.update(cache_time) reads, so the next run skips the update.
        server.shell(name="Update apt lists",
                     commands=["apt-get update", f"touch {apt.APT_UPDATE_FILENAME}"])
    else:
        apt.update(name="Update apt lists", cache_time=data.base_apt_cache_time)
    apt.packages(name="Install base packages",
                 packages=[*data.base_packages, *data.base_extra_packages], no_recommends=True)


def _identity(data) -> None:
    name = data.base_hostname or host.name
    server.hostname(name="Set hostname", hostname=name)
    config_file("base", "hosts", "/etc/hosts", name="Write /etc/hosts", hostname=name,
                peers=_peers())
    files.link(name="Set timezone", path="/etc/localtime",
               target=f"/usr/share/zoneinfo/{data.base_timezone}")
    if host.get_fact(Directory, "/etc/cloud/cloud.cfg.d"):
        config_file("base", "cloud-init.cfg", "/etc/cloud/cloud.cfg.d/99-keel.cfg",
                    name="Keep cloud-init off the hostname and /etc/hosts")
    managed_file(name="Write /etc/timezone", dest="/etc/timezone",
                 content=f"{data.base_timezone}\n")
    if not data.base_locale.startswith("C."):
        apt.packages(name="Install locales", packages=["locales"], no_recommends=True)
        gen = files.line(name="Enable locale in /etc/locale.gen", path="/etc/locale.gen",
                         line=f"{data.base_locale} .*",
                         replace=f"{data.base_locale} {data.base_locale.split('.')[-1]}")
        server.shell(name="Generate locales", commands=["locale-gen"], _if=gen.did_change)
    managed_file(name="Set default locale", dest="/etc/default/locale",
                 content=f"LANG={data.base_locale}\n")
    journald = config_file("base", "journald.conf", "/etc/systemd/journald.conf.d/keel.conf",
                           name="Cap journald disk use")
    systemd.service(name="Restart journald", service="systemd-journald", restarted=True,
                    _if=journald.did_change)
    sysctl = config_file("base", "sysctl.conf", "/etc/sysctl.d/90-keel.conf",
                         name="Write kernel hardening sysctls")
    # systemd-sysctl skips itself where /proc/sys is read-only (containers).
    systemd.service(name="Apply sysctls", service="systemd-sysctl", running=None,
                    restarted=True, _if=sysctl.did_change)


def _time(data) -> None:
    conf = config_file("base", "timesyncd.conf", "/etc/systemd/timesyncd.conf.d/keel.conf",
                       name="Configure time sync (timesyncd)")
    # Enabled, not forced running: the unit skips itself in containers, where the
    # controller's kernel keeps time.
    service(name="Enable time sync", service="systemd-timesyncd", running=None,
            enabled=True)
    systemd.service(name="Restart time sync", service="systemd-timesyncd", running=None,
                    restarted=True, _if=conf.did_change)


def _admins(data) -> None:
    server.group(name=f"Admin group {data.base_admin_group}", group=data.base_admin_group)
    config_file("base", "sudoers", "/etc/sudoers.d/keel-admins", mode="0440",
                name="Passwordless sudo for admins")
    for user in data.base_admin_users:
        present = user.state == "present"
        server.user(
            name=f"Admin user {user.name}" if present else f"Remove user {user.name}",
            user=user.name, present=present, shell=user.shell,
            groups=[data.base_admin_group], home=f"/home/{user.name}",
            create_home=True, public_keys=list(user.ssh_keys) if present else None,
            delete_keys=True,
        )


def _default_user(data) -> None:
    """Lock the image's default user. The run may be logged in as that user: its open SSH
    session and sudo keep working, so later roles still apply, and the next run logs in as
    an admin (inventories/vm.py picks whichever can)."""
    name = data.base_default_user
    user = host.get_fact(Users).get(name) if name and data.base_default_user_lock else None
    if user is None:
        return
    files.file(name=f"Remove SSH keys of default user {name}",
               path=f"{user['home']}/.ssh/authorized_keys", present=False)
    if not (user["password"] or "").startswith(("!", "*")):
        server.shell(name=f"Lock password of default user {name}",
                     commands=[f"usermod --lock {name}"])


def _sshd(data) -> None:
    conf = config_file("base", "sshd.conf", "/etc/ssh/sshd_config.d/10-keel.conf",
                       name="Harden sshd")
    server.shell(name="Check sshd config", commands=["sshd -t"], _if=conf.did_change)
    systemd.service(name="Reload sshd", service="ssh", reloaded=True, _if=conf.did_change)


def _firewall(data) -> None:
    if not data.base_firewall_enabled:
        return
    rules = config_file("base", "nftables.conf", "/etc/nftables.conf", mode="0600",
                        name="Write firewall rules", rules=firewall_rules())
    # nft -f is one transaction: a bad file fails whole and the running rules stay.
    server.shell(name="Load firewall rules", commands=["nft -f /etc/nftables.conf"],
                 _if=rules.did_change)
    service(name="Enable firewall at boot", service="nftables", running=None,
            enabled=True)


def _upgrades(data) -> None:
    config_file("base", "20auto-upgrades", "/etc/apt/apt.conf.d/20auto-upgrades",
                name="Set unattended security upgrades")


def _peers() -> list[tuple[str, str]]:
    from pyinfra import inventory

    return sorted((other.data.keel_address, other.name) for other in inventory
                  if other.data.get("keel_address") and other.name != host.name)

