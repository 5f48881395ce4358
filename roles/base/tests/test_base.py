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
