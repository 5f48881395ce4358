"""base's hardening controls (dev-sec os_hardening / linux-baseline, CIS Debian 12 Level 1):
accounts, core dumps, kernel modules, audit, integrity checks, banners, /tmp, cron and at.

Everything reads one fact, `BaseState`, so a converged host costs one round trip here."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from keel.deploy.ops import config_file, managed_file, service, unit_files

METRICS_SCRIPT = "/usr/local/sbin/keel-base-metrics"
# Accounts CIS lets keep their shell (5.4.2.7): their "shell" is what they are for.
SHELL_EXEMPT = {"root", "sync", "shutdown", "halt"}
NOLOGIN = "/usr/sbin/nologin"
ACCOUNTS_SCRIPT = "/usr/local/sbin/keel-lock-system-accounts"
AIDE_FLAG = "/var/lib/aide/keel.rebaseline"
# System accounts (0 < uid < 1000) with a login shell, and those with a usable password: one
# name a line. The fact and the script apt runs after each dpkg run share them.
SYSTEM_SHELLS = "awk -F: '$3>0 && $3<1000 && $7!~/(nologin|false)$/ {print $1}' /etc/passwd"
SYSTEM_UNLOCKED = ("awk -F: 'NR==FNR {uid[$1]=$3; next} uid[$1]>0 && uid[$1]<1000 && "
                   "$2!~/^[!*]/ {print $1}' /etc/passwd /etc/shadow")


class BaseState(FactBase):
    """What the hardening controls need to know, in one round trip."""

    command = r"""
echo "virt=$(systemd-detect-virt --container 2>/dev/null || echo none)"
[ -e /proc/self/loginuid ] && echo audit_kernel=1
auditctl -s 2>/dev/null | awk '$1 == "enabled" {print "audit_enabled=" $2}'
echo "tmp=$(findmnt -n -o OPTIONS /tmp 2>/dev/null)"
# A baseline being built in the background (keel-base-metrics) counts as there.
{ [ -f /var/lib/aide/keel.db ] || systemctl list-jobs --no-legend keel-base-metrics.service \
    2>/dev/null | grep -q . ; } && echo aide_db=1
""" + SYSTEM_SHELLS + " | sed 's/^/shell=/'\n" \
        + SYSTEM_UNLOCKED + " | sed 's/^/unlocked=/'\n" + r"""
find /usr/bin /usr/sbin -xdev -type f -perm /6000 2>/dev/null | sort | sed 's/^/suid=/'
for k in /etc/ssh/ssh_host_*_key; do
    [ ! -e "$k" ] || [ "$(stat -c %a:%U:%G "$k")" = 600:root:root ] || echo "loosekey=$k"
done
ls /etc/cron.deny /etc/at.deny 2>/dev/null | sed 's/^/deny=/'
[ -z "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ] && [ -z "$(dpkg --audit 2>/dev/null)" ] \
    || echo dpkg_interrupted=1
apt-get -s -o Debug::NoLocking=1 dist-upgrade 2>/dev/null \
    | awk '/^Inst / && /-security/ {print "security="$2}'
true
"""

    def process(self, output) -> dict:
        state = {"virt": "none", "audit_kernel": False, "audit_enabled": "", "tmp": "",
                 "aide_db": False,
                 "dpkg_interrupted": False,
                 "shell": [], "unlocked": [], "suid": [], "security": [], "deny": [],
                 "loosekey": []}
        for line in output:
            key, _, value = line.partition("=")
            if isinstance(state.get(key), list):
                state[key].append(value)
            elif key in ("audit_kernel", "aide_db", "dpkg_interrupted"):
                state[key] = True
            elif key in state:
                state[key] = value.strip()
        return state


def state() -> dict:
    return host.get_fact(BaseState)


def audit_available(current: dict) -> bool:
    """A container shares its host's kernel audit and may not load rules of its own."""
    return current["audit_kernel"] and current["virt"] == "none"


def packages(settings, current: dict) -> list[str]:
    """The packages the hardening controls need, given the settings and the host."""
    wanted = {
        "libpam-pwquality": bool(settings.base_pwquality),
        "debsums": settings.base_integrity,
        "aide": settings.base_integrity,
        "needrestart": settings.base_security_updates,
        "auditd": settings.base_audit and audit_available(current),
    }
    return [name for name, on in wanted.items() if on]


def accounts(settings, current: dict) -> None:
    defs = dict(DEBIAN_LOGIN_DEFS)
    defs.update(settings.base_login_defs)
    if settings.base_umask:
        defs["UMASK"] = settings.base_umask
    config_file("base", "login.defs", "/etc/login.defs", name="Set login.defs (ageing, hashing, "
                "umask)", defs=defs)
    if settings.base_umask:
        umask = config_file("base", "pam-umask", "/usr/share/pam-configs/keel-umask",
                            name="PAM profile: umask for every session")
        server.shell(name="Enable pam_umask (pam-auth-update)",
                     commands=["pam-auth-update --package --enable keel-umask"],
                     _if=umask.did_change)
    if settings.base_pwquality:
        config_file("base", "pwquality.conf", "/etc/security/pwquality.conf.d/keel.conf",
                    name="Password quality (pam_pwquality)", settings=settings)
    if settings.base_lock_system_accounts:
        # Accounts on the host now; packages that add one later (postgresql's has bash) are
        # handled by apt's hook (accounts_hook), so a later role's install undoes nothing.
        for user in sorted(set(current["shell"]) - SHELL_EXEMPT):
            server.shell(name=f"No login shell for system account {user}",
                         commands=[f"usermod --shell {NOLOGIN} {user}"])
        for user in sorted(set(current["unlocked"]) - {"root"}):
            server.shell(name=f"Lock password of system account {user}",
                         commands=[f"usermod --lock {user}"])


def accounts_hook(settings) -> None:
    """System accounts a package creates or changes get no login shell and a locked password
    right after the dpkg run (apt's DPkg::Post-Invoke). Written before base's own installs."""
    on = settings.base_lock_system_accounts
    if on:
        config_file("base", "keel-lock-system-accounts", ACCOUNTS_SCRIPT, mode="0755",
                    name="Install the system accounts lock script", shells=SYSTEM_SHELLS,
                    unlocked=SYSTEM_UNLOCKED, exempt=sorted(SHELL_EXEMPT), nologin=NOLOGIN)
        config_file("base", "99keel-accounts", "/etc/apt/apt.conf.d/99keel-accounts",
                    name="Lock system accounts after each package install", script=ACCOUNTS_SCRIPT)
    else:
        for path in (ACCOUNTS_SCRIPT, "/etc/apt/apt.conf.d/99keel-accounts"):
            files.file(name=f"Remove {path}", path=path, present=False)


def kernel(settings) -> None:
    if not settings.base_core_dumps:
        config_file("base", "coredump-limits.conf", "/etc/security/limits.d/keel-coredump.conf",
                    name="No core dumps (limits)")
        config_file("base", "coredump.conf", "/etc/systemd/coredump.conf.d/keel.conf",
                    name="No core dumps (systemd-coredump)")
    if settings.base_blacklisted_modules:
        config_file("base", "modprobe-blacklist.conf", "/etc/modprobe.d/keel-blacklist.conf",
                    name="Blacklist unused filesystems and protocols", settings=settings)


# Keys each network namespace has its own copy of. Every other key (kernel.*, fs.*, vm.*,
# net.core.*) is the machine's: a privileged container writing it would change its host.
NAMESPACED_SYSCTLS = ("net.ipv4.", "net.ipv6.")


def sysctls(settings, current: dict) -> tuple[dict, dict]:
    """(written, skipped): in a container only the network-namespaced keys are written."""
    values = dict(settings.base_sysctl)
    if not settings.base_core_dumps:
        values.setdefault("fs.suid_dumpable", 0)
    if current["virt"] == "none":
        return values, {}
    written = {k: v for k, v in values.items() if k.startswith(NAMESPACED_SYSCTLS)}
    return written, {k: v for k, v in values.items() if k not in written}


def audit(settings, current: dict, journald_restarts: list) -> None:
    """journald_restarts: this run's operations that may restart systemd-journald."""
    if not settings.base_audit:
        return
    if not audit_available(current):
        # Say so in the plan: an operation with nothing to do, named after the reason.
        server.shell(name=f"Skip auditd: the kernel offers no audit here ({current['virt']})",
                     commands=[])
        return
    conf = config_file("base", "auditd.conf", "/etc/audit/auditd.conf", mode="0640",
                       name="auditd: log rotation", settings=settings)
    rules = config_file("base", "audit.rules", "/etc/audit/rules.d/keel.rules", mode="0640",
                        name="auditd: baseline rules", privileged=current["suid"])
    service(name="Run auditd", service="auditd", running=True, enabled=True)
    server.shell(name="Load audit rules", commands=["augenrules --load"], _if=rules.did_change)
    # auditd refuses systemctl restart; its own reload (SIGHUP) rereads auditd.conf.
    server.shell(name="Reload auditd", commands=["service auditd reload"], _if=conf.did_change)
    # journald turns kernel auditing off when it starts after auditd (a journald.conf change,
    # a systemd update), and the rules stay loaded but record nothing.
    server.shell(name="Turn kernel auditing on", commands=["auditctl -e 1 >/dev/null"],
                 _if=lambda: current["audit_enabled"] != "1"
                 or any(op.did_change() for op in journald_restarts))


def banners(settings) -> None:
    if not settings.base_banner:
        return
    for path in ("/etc/issue", "/etc/issue.net"):
        managed_file(name=f"Legal banner {path}", dest=path, content=settings.base_banner + "\n")


def cron_at(settings, current: dict) -> None:
    if not settings.base_cron_allow:
        return
    users = "".join(f"{user}\n" for user in settings.base_cron_allow)
    for path in ("/etc/cron.allow", "/etc/at.allow"):
        managed_file(name=f"Restrict {path.split('/')[-1].split('.')[0]} to its allow list",
                     dest=path, content=users, mode="0640")
    # With an allow file the deny file is ignored; CIS wants it gone all the same.
    if current["deny"]:
        server.shell(name="Remove " + " and ".join(current["deny"]),
                     commands=[f"rm -f {' '.join(current['deny'])}"])


def tmp(settings, current: dict) -> None:
    """Mount options for /tmp where it is a mount (systemd's tmp.mount, or the container's)."""
    if not settings.base_tmp_options or not current["tmp"]:
        return
    have = set(current["tmp"].split(","))
    missing = [opt for opt in settings.base_tmp_options if opt not in have]
    options = ",".join(["mode=1777", "strictatime", *settings.base_tmp_options])
    config_file("base", "tmp.mount", "/etc/systemd/system/tmp.mount.d/keel.conf",
                name="/tmp mount options (tmp.mount)", options=options)
    if missing:
        server.shell(name=f"Remount /tmp with {','.join(missing)}",
                     commands=[f"mount -o remount,{','.join(missing)} /tmp"])


def metrics(settings, current: dict) -> None:
    """Reboot-required, needrestart, debsums and AIDE as textfile metrics, on a timer."""
    if not (settings.base_security_updates or settings.base_integrity):
        return
    integrity = settings.base_integrity
    script = config_file("base", "keel-base-metrics", METRICS_SCRIPT, mode="0755",
                         name="Install the base metrics script", integrity=integrity,
                         metrics_dir=settings.base_metrics_dir, flag=AIDE_FLAG)
    rebuild = False
    if integrity:
        # Packages change /usr/bin legitimately; debsums checks those against the packages'
        # own sums, so AIDE takes a new baseline after each dpkg run (in the background).
        config_file("base", "99keel-aide", "/etc/apt/apt.conf.d/99keel-aide",
                    name="AIDE: new baseline after package changes", script=METRICS_SCRIPT,
                    flag=AIDE_FLAG)
        aide = config_file("base", "aide.conf", "/etc/aide/keel.conf", mode="0600",
                           name="AIDE: keel's scope", settings=settings)
        rebuild = aide.will_change or not current["aide_db"]
    units = unit_files("base", ["keel-base-metrics.service", "keel-base-metrics.timer"],
                       label="base metrics", script=METRICS_SCRIPT, settings=settings)
    service(name="Run the base metrics timer", service="keel-base-metrics.timer",
            running=True, enabled=True)
    # In the background: AIDE's first baseline and debsums take a while (tens of seconds on a
    # loaded machine), and the run need not wait for them; the metrics say when they are done.
    if rebuild:
        server.shell(name="AIDE: build the baseline database, then write base metrics "
                          "(in the background)",
                     commands=[f"install -d -m 0700 /var/lib/aide && touch {AIDE_FLAG}",
                               "systemctl restart --no-block keel-base-metrics.service"])
    else:
        server.shell(name="Write base metrics now (in the background)",
                     commands=["systemctl restart --no-block keel-base-metrics.service"],
                     _if=any_changed(script, units[0]))


# Debian 12's /etc/login.defs (login 1:4.13), its effective lines; keel's values go over it.
DEBIAN_LOGIN_DEFS = {
    "MAIL_DIR": "/var/mail", "FAILLOG_ENAB": "yes", "LOG_UNKFAIL_ENAB": "no",
    "LOG_OK_LOGINS": "no", "SYSLOG_SU_ENAB": "yes", "SYSLOG_SG_ENAB": "yes",
    "FTMP_FILE": "/var/log/btmp", "SU_NAME": "su", "HUSHLOGIN_FILE": ".hushlogin",
    "ENV_SUPATH": "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV_PATH": "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games",
    "TTYGROUP": "tty", "TTYPERM": "0600", "ERASECHAR": "0177", "KILLCHAR": "025",
    "UMASK": "022", "PASS_MAX_DAYS": 99999, "PASS_MIN_DAYS": 0, "PASS_WARN_AGE": 7,
    "UID_MIN": 1000, "UID_MAX": 60000, "SUB_UID_MIN": 100000, "SUB_UID_MAX": 600100000,
    "SUB_UID_COUNT": 65536, "GID_MIN": 1000, "GID_MAX": 60000, "SUB_GID_MIN": 100000,
    "SUB_GID_MAX": 600100000, "SUB_GID_COUNT": 65536, "LOGIN_RETRIES": 5,
    "LOGIN_TIMEOUT": 60, "CHFN_RESTRICT": "rwh", "DEFAULT_HOME": "yes",
    "USERGROUPS_ENAB": "yes", "ENCRYPT_METHOD": "SHA512", "NONEXISTENT": "/nonexistent",
    "PREVENT_NO_AUTH": "superuser",
}
