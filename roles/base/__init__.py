"""base: what every host gets. apt, identity, time, admins, sshd, firewall, upgrades, and the
hardening baseline (roles/base/hardening.py)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Users
from pyinfra.operations import apt, files, server, systemd

from keel.core.roles import Role
from keel.core.schema import PortRule
from keel.deploy.ops import config_file, managed_file, service
from roles.base import hardening
from roles.base.alerts import BASE_ALERTS
from roles.base.firewall import firewall_rules
from roles.base.schema import Settings, allow_groups, cross_check

# Security updates only, computed on the host when the command runs (the lists may have been
# refreshed by this very run). needrestart lists what needs a restart; it restarts nothing.
SECURITY_UPGRADE = (
    "pkgs=$(apt-get -s dist-upgrade | awk '/^Inst / && /-security/ {print $2}'); "
    '[ -z "$pkgs" ] || DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l '
    "apt-get install -y -q --only-upgrade -o Dpkg::Options::=--force-confdef "
    "-o Dpkg::Options::=--force-confold $pkgs"
)


def ports(settings: Settings) -> list[PortRule]:
    """Inbound ports base needs: sshd, plus the extra ports its data lists."""
    return [PortRule(port=settings.base_sshd_port, sources=settings.base_sshd_sources,
                     comment="sshd"),
            *settings.base_firewall_ports]


@deploy("base")
def apply(settings: Settings) -> None:
    current = hardening.state()
    if settings.base_security_updates:  # before any package install: list, do not restart
        config_file("base", "needrestart.conf", "/etc/needrestart/conf.d/keel.conf",
                    name="needrestart: list, do not restart")
    hardening.accounts_hook(settings)  # before any package install, as well
    if current["dpkg_interrupted"]:
        # A host lost (or the controller killed) during an install leaves dpkg's run unfinished,
        # and apt then refuses every install until it is finished.
        server.shell(name="Finish the dpkg run that was cut short", commands=[
            "DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold --configure -a",
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -f "
            "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"])
    refreshed = _apt(settings, hardening.packages(settings, current))
    restarts = [*_security_updates(settings, current, refreshed), _identity(settings, current)]
    _time(settings)
    _admins(settings)
    _default_user(settings)
    hardening.accounts(settings, current)
    hardening.banners(settings)
    _sshd(settings, current)
    _firewall(settings)
    _upgrades(settings)
    hardening.kernel(settings)
    hardening.tmp(settings, current)
    hardening.cron_at(settings, current)
    hardening.audit(settings, current, restarts)
    hardening.metrics(settings, current)


def alerts() -> list[dict]:
    return [BASE_ALERTS]


def _apt(settings, extra: list[str]) -> bool:
    """Sources, lists and packages. True when this run refreshes the lists."""
    sources = config_file("base", "debian.sources", "/etc/apt/sources.list.d/debian.sources",
                          name="Set Debian apt sources (main, updates, security)",
                          settings=settings)
    legacy = files.file(name="Remove legacy /etc/apt/sources.list", path="/etc/apt/sources.list",
                        present=False)
    # Refresh when the sources change, otherwise only once the cache is older than cache_time.
    if sources.will_change or legacy.will_change:
        # Touch the stamp that apt.update(cache_time) reads, so the next run skips the update.
        update = server.shell(name="Update apt lists",
                              commands=["apt-get update", f"touch {apt.APT_UPDATE_FILENAME}"])
    else:
        update = apt.update(name="Update apt lists", cache_time=settings.base_apt_cache_time)
    apt.packages(name="Install base packages",
                 packages=[*settings.base_packages, *extra, *settings.base_extra_packages],
                 no_recommends=True)
    return update.will_change


def _security_updates(settings, current: dict, refreshed: bool) -> list:
    """Pending security updates, applied now rather than at unattended-upgrades' first run.
    The plan names them; a run that refreshes the lists looks again on the host. Returns the
    operation, if any."""
    pending = current["security"]
    if not settings.base_security_updates or not (pending or refreshed):
        return []
    shown = ", ".join(pending[:8]) + (f" and {len(pending) - 8} more" if len(pending) > 8 else "")
    name = (f"Apply {len(pending)} pending security updates ({shown})" if pending
            else "Apply pending security updates (lists refreshed)")
    return [server.shell(name=name, commands=[SECURITY_UPGRADE])]


def _identity(settings, current: dict):
    """Hostname, /etc/hosts, timezone, locale, journald and sysctls; returns journald's restart."""
    name = settings.base_hostname or host.name
    server.hostname(name="Set hostname", hostname=name)
    config_file("base", "hosts", "/etc/hosts", name="Write /etc/hosts", hostname=name,
                peers=_peers())
    files.link(name="Set timezone", path="/etc/localtime",
               target=f"/usr/share/zoneinfo/{settings.base_timezone}")
    if host.get_fact(Directory, "/etc/cloud/cloud.cfg.d"):
        config_file("base", "cloud-init.cfg", "/etc/cloud/cloud.cfg.d/99-keel.cfg",
                    name="Keep cloud-init off the hostname and /etc/hosts")
    managed_file(name="Write /etc/timezone", dest="/etc/timezone",
                 content=f"{settings.base_timezone}\n")
    if not settings.base_locale.startswith("C."):
        apt.packages(name="Install locales", packages=["locales"], no_recommends=True)
        gen = files.line(name="Enable locale in /etc/locale.gen", path="/etc/locale.gen",
                         line=f"{settings.base_locale} .*",
                         replace=f"{settings.base_locale} {settings.base_locale.split('.')[-1]}")
        server.shell(name="Generate locales", commands=["locale-gen"], _if=gen.did_change)
    managed_file(name="Set default locale", dest="/etc/default/locale",
                 content=f"LANG={settings.base_locale}\n")
    journald = config_file("base", "journald.conf", "/etc/systemd/journald.conf.d/keel.conf",
                           name="Cap journald disk use", settings=settings)
    restart = systemd.service(name="Restart journald", service="systemd-journald",
                              restarted=True, _if=journald.did_change)
    written, skipped = hardening.sysctls(settings, current)
    sysctl = config_file("base", "sysctl.conf", "/etc/sysctl.d/90-keel.conf",
                         name="Write kernel hardening sysctls" + (
                             f" (container: {len(skipped)} host-wide keys left out)"
                             if skipped else ""),
                         sysctls=written, skipped=skipped, virt=current["virt"])
    # systemd-sysctl skips itself where /proc/sys is read-only (containers); where it is
    # writable (a privileged container) the file holds network-namespaced keys only.
    systemd.service(name="Apply sysctls", service="systemd-sysctl", running=None,
                    restarted=True, _if=sysctl.did_change)
    return restart


def _time(settings) -> None:
    conf = config_file("base", "timesyncd.conf", "/etc/systemd/timesyncd.conf.d/keel.conf",
                       name="Configure time sync (timesyncd)", settings=settings)
    # Enabled, not forced running: the unit skips itself in containers, where the
    # controller's kernel keeps time.
    service(name="Enable time sync", service="systemd-timesyncd", running=None,
            enabled=True)
    systemd.service(name="Restart time sync", service="systemd-timesyncd", running=None,
                    restarted=True, _if=conf.did_change)


def _admins(settings) -> None:
    server.group(name=f"Admin group {settings.base_admin_group}", group=settings.base_admin_group)
    config_file("base", "sudoers", "/etc/sudoers.d/keel-admins", mode="0440",
                name="Passwordless sudo for admins", settings=settings,
                check="visudo -cqf /etc/sudoers.d/keel-admins")
    for user in settings.base_admin_users:
        present = user.state == "present"
        server.user(
            name=f"Admin user {user.name}" if present else f"Remove user {user.name}",
            user=user.name, present=present, shell=user.shell,
            groups=[settings.base_admin_group], home=f"/home/{user.name}",
            create_home=True, public_keys=list(user.ssh_keys) if present else None,
            delete_keys=True,
        )


def _default_user(settings) -> None:
    """Lock the image's default user. The run may be logged in as that user: its open SSH
    session and sudo keep working, so later roles still apply, and the next run logs in as
    an admin (inventories/vm.py picks whichever can)."""
    name = settings.base_default_user
    user = host.get_fact(Users).get(name) if name and settings.base_default_user_lock else None
    if user is None:
        return
    files.file(name=f"Remove SSH keys of default user {name}",
               path=f"{user['home']}/.ssh/authorized_keys", present=False)
    if not (user["password"] or "").startswith(("!", "*")):
        server.shell(name=f"Lock password of default user {name}",
                     commands=[f"usermod --lock {name}"])


def _sshd(settings, current: dict) -> None:
    conf = config_file("base", "sshd.conf", "/etc/ssh/sshd_config.d/10-keel.conf",
                       name="Harden sshd", settings=settings,
                       allow_groups=allow_groups(settings), check="sshd -t")
    # Host keys: private ones root-only (ssh-baseline); sshd refuses looser ones anyway.
    if current["loosekey"]:
        keys = " ".join(current["loosekey"])
        server.shell(name="Host keys root-only (0600)",
                     commands=[f"chown root:root {keys}", f"chmod 0600 {keys}"])
    systemd.service(name="Reload sshd", service="ssh", reloaded=True, _if=conf.did_change)


def _firewall(settings) -> None:
    if not settings.base_firewall_enabled:
        return
    rules = config_file("base", "nftables.conf", "/etc/nftables.conf", mode="0600",
                        name="Write firewall rules", rules=firewall_rules(),
                        check="nft -c -f /etc/nftables.conf")
    # nft -f is one transaction: a bad file fails whole and the running rules stay.
    server.shell(name="Load firewall rules", commands=["nft -f /etc/nftables.conf"],
                 _if=rules.did_change)
    service(name="Enable firewall at boot", service="nftables", running=None,
            enabled=True)


def _upgrades(settings) -> None:
    config_file("base", "20auto-upgrades", "/etc/apt/apt.conf.d/20auto-upgrades",
                name="Set unattended security upgrades", settings=settings)


def _peers() -> list[tuple[str, str]]:
    from pyinfra import inventory

    return sorted((other.data.keel_address, other.name) for other in inventory
                  if other.data.get("keel_address") and other.name != host.name)


ROLE = Role(name="base", settings=Settings, apply=apply, groups=("all",), ports=ports,
            alerts=alerts, cross_check=cross_check)
