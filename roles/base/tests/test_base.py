"""testinfra checks for base: behaviour on the host, run by the suite and by molecule."""

import runpy
from pathlib import Path

DATA = runpy.run_path(str(Path(__file__).with_name("data.py")))


def test_sshd_refuses_passwords(host):
    effective = host.check_output("sshd -T")
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert "permitrootlogin without-password" in effective  # = prohibit-password
    assert host.service("ssh").is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_firewall_default_deny(host):
    conf = host.file("/etc/nftables.conf")
    assert conf.user == "root" and conf.mode == 0o600
    ruleset = host.check_output("nft list table inet keel")
    assert "policy drop" in ruleset
    assert "dport 22 accept" in ruleset
    assert host.service("nftables").is_enabled


def test_admin_user(host):
    alice = host.user("alice")
    assert alice.exists and "admins" in alice.groups and alice.shell == "/bin/bash"
    keys = host.file("/home/alice/.ssh/authorized_keys")
    assert keys.user == "alice" and keys.mode == 0o600
    assert DATA["base_admin_users"][0]["ssh_keys"][0] in keys.content_string
    sudoers = host.file("/etc/sudoers.d/keel-admins")
    assert sudoers.user == "root" and sudoers.mode == 0o440
    assert host.run("visudo -cf /etc/sudoers.d/keel-admins").rc == 0
    assert host.run("sudo -u alice sudo -n true").rc == 0


def test_time_and_locale(host):
    assert host.file("/etc/timezone").content_string.strip() == DATA["base_timezone"]
    assert host.file("/etc/localtime").linked_to == f"/usr/share/zoneinfo/{DATA['base_timezone']}"
    assert host.check_output("date +%Z") in ("CET", "CEST")
    assert host.service("systemd-timesyncd").is_enabled
    assert "NTP=" in host.file("/etc/systemd/timesyncd.conf.d/keel.conf").content_string


def test_journald_cap(host):
    conf = host.file("/etc/systemd/journald.conf.d/keel.conf").content_string
    assert f"SystemMaxUse={DATA['base_journald_max_use']}" in conf


def test_apt_sources_and_upgrades(host):
    sources = host.file("/etc/apt/sources.list.d/debian.sources").content_string
    assert "bookworm-security" in sources and "bookworm-updates" in sources
    assert not host.file("/etc/apt/sources.list").exists
    assert host.package("unattended-upgrades").is_installed
    periodic = host.file("/etc/apt/apt.conf.d/20auto-upgrades").content_string
    assert 'Unattended-Upgrade "1"' in periodic


def test_system_dirs_owned_by_root(host):
    for path in ("/etc", "/usr", "/var", "/etc/ssh/sshd_config.d"):
        assert host.file(path).user == "root"


# --- hardening (roles/base/hardening.py): what each control leaves on the host ------------

def test_sshd_baseline_settings(host):
    effective = host.check_output("sshd -T")
    expected = [
        "ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
        "aes256-ctr,aes192-ctr,aes128-ctr",
        "macs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
        "umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256",
        "kexalgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,",
        "maxauthtries 3", "maxsessions 10", "clientaliveinterval 300", "clientalivecountmax 2",
        "logingracetime 30", "allowagentforwarding no", "allowtcpforwarding no",
        "x11forwarding no", "permittunnel no", "loglevel VERBOSE", "allowgroups root\n",
        "allowgroups admins\n",
        "banner /etc/issue.net",
    ]
    for line in expected:
        assert line in effective, line
    for key in host.check_output("ls /etc/ssh/ssh_host_*_key").split():
        f = host.file(key)
        assert f.user == "root" and f.mode == 0o600, key


def test_banners(host):
    for path in ("/etc/issue", "/etc/issue.net"):
        assert "Authorised access only" in host.file(path).content_string


def test_login_defs_and_pwquality(host):
    defs = host.file("/etc/login.defs").content_string
    for line in ("UMASK 027", "PASS_MIN_DAYS 1", "PASS_WARN_AGE 7", "ENCRYPT_METHOD YESCRYPT"):
        assert line in defs.splitlines(), line
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    assert "minlen = 14" in host.file("/etc/security/pwquality.conf.d/keel.conf").content_string
    assert "pam_umask.so" in host.file("/etc/pam.d/common-session").content_string


def test_umask_applies_to_a_new_login(host):
    """A login session (PAM: su -) gets 027 from login.defs through pam_umask."""
    assert host.check_output("su - alice -s /bin/sh -c umask") == "0027"
    assert host.check_output("su - alice -s /bin/sh -c 'touch /tmp/u-$$ && stat -c %a "
                             "/tmp/u-$$ && rm /tmp/u-$$'") == "640"


def test_system_accounts_locked(host):
    for line in host.file("/etc/passwd").content_string.splitlines():
        name, _, uid, _, _, _, shell = line.split(":")
        if 0 < int(uid) < 1000 and name not in ("sync", "shutdown", "halt"):
            assert shell in ("/usr/sbin/nologin", "/bin/false"), name


def test_core_dumps_off(host):
    assert "* hard core 0" in host.file("/etc/security/limits.d/keel-coredump.conf").content_string
    assert host.check_output("su - alice -s /bin/sh -c 'ulimit -Hc'") == "0"
    assert "Storage=none" in host.file("/etc/systemd/coredump.conf.d/keel.conf").content_string
    # In a container the key is listed but left out (the kernel is the machine's).
    assert "fs.suid_dumpable = 0" in host.file("/etc/sysctl.d/90-keel.conf").content_string


def test_sysctls_host_wide_keys_left_out_in_a_container(host):
    """A privileged container's /proc/sys is writable: only per-network-namespace keys may be
    written there, or the sandbox would harden the machine's own kernel."""
    if host.check_output("systemd-detect-virt --container || true") in ("", "none"):
        return
    lines = host.file("/etc/sysctl.d/90-keel.conf").content_string.splitlines()
    active = [line.split("=")[0].strip() for line in lines if "=" in line
              and not line.startswith("#")]
    assert active and all(key.startswith(("net.ipv4.", "net.ipv6.")) for key in active), active
    assert "# kernel.kexec_load_disabled = 1" in lines and "# fs.suid_dumpable = 0" in lines
    vendor = host.check_output("ls /usr/lib/sysctl.d/ | grep '[.]conf$' || true").split()
    for name in vendor:
        assert host.file(f"/etc/sysctl.d/{name}").linked_to == "/dev/null", name


def test_module_blacklist_written(host):
    conf = host.file("/etc/modprobe.d/keel-blacklist.conf").content_string
    for module in ("dccp", "sctp", "rds", "tipc", "cramfs", "usb-storage"):
        assert f"install {module} /bin/false" in conf


def test_cron_and_at_restricted_to_root(host):
    for path in ("/etc/cron.allow", "/etc/at.allow"):
        f = host.file(path)
        assert f.content_string.split() == ["root"] and f.mode == 0o640
    assert not host.file("/etc/cron.deny").exists and not host.file("/etc/at.deny").exists


def test_tmp_mount_options(host):
    options = host.check_output("findmnt -n -o OPTIONS /tmp").split(",")
    assert "nosuid" in options and "nodev" in options


def test_no_pending_security_update(host):
    sim = host.check_output("apt-get -s -o Debug::NoLocking=1 dist-upgrade")
    assert [line for line in sim.splitlines()
            if line.startswith("Inst ") and "-security" in line] == []


def test_metrics_and_integrity(host):
    assert host.service("keel-base-metrics.timer").is_enabled
    # The converge starts AIDE's baseline and the first check in the background (one job).
    host.run("for i in $(seq 180); do systemctl list-jobs --no-legend keel-base-metrics.service "
             "| grep -q . || break; sleep 1; done")
    assert not host.file("/var/lib/aide/keel.rebaseline").exists
    prom = host.file("/var/lib/prometheus/node-exporter/keel_base.prom").content_string
    for metric in ("keel_base_reboot_required 0", "keel_base_needrestart_services",
                   "keel_base_debsums_changed_files 0", "keel_base_aide_changed 0",
                   "keel_base_aide_ok 1"):
        assert metric in prom, metric
    assert host.file("/var/lib/aide/keel.db").mode == 0o600


def test_audit_skipped_in_a_container(host):
    """No kernel audit in a container: base neither installs nor starts auditd there."""
    if host.run("systemd-detect-virt --container").rc == 0:
        assert not host.package("auditd").is_installed
