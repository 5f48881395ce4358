"""base's hardening settings and alert rules, without hosts."""

import re

import pytest
from pydantic import ValidationError

from keel import ROOT
from keel.core.render import render
from roles.base.alerts import BASE_ALERTS
from roles.base.schema import SSHD_ALGORITHMS, Settings, allow_groups


def test_alerts_use_the_metrics_the_script_writes():
    script = (ROOT / "templates/base/keel-base-metrics.j2").read_text()
    assert {r["alert"] for r in BASE_ALERTS["rules"]} >= {
        "HostRebootRequired", "HostServicesOnDeletedLibraries", "HostPackageFilesChanged",
        "HostFileIntegrityChanged"}
    for rule in BASE_ALERTS["rules"]:
        names = re.findall(r"keel_base_[a-z_]+", rule["expr"])
        assert names and all(name in script for name in names), rule["alert"]


def test_weak_algorithms_are_dropped_and_none_left_is_refused():
    settings = Settings(base_sshd_ciphers=["aes128-cbc", "aes256-gcm@openssh.com"])
    assert settings.base_sshd_ciphers == ["aes256-gcm@openssh.com"]
    for key, weak in [("base_sshd_ciphers", "3des-cbc"), ("base_sshd_macs", "hmac-sha1"),
                      ("base_sshd_kex", "diffie-hellman-group1-sha1")]:
        with pytest.raises(ValidationError, match="left after filtering"):
            Settings(**{key: [weak]})
    assert not {"aes128-cbc", "3des-cbc"} & set(SSHD_ALGORITHMS["ciphers"])


def test_allow_groups_follow_root_login():
    assert allow_groups(Settings()) == ["root", "admins"]
    assert allow_groups(Settings(base_sshd_permit_root_login="no")) == ["admins"]
    assert allow_groups(Settings(base_sshd_allow_groups=[])) == []


def test_sshd_template_off_switches():
    off = Settings(base_sshd_allow_groups=[], base_banner="", base_sshd_tcp_forwarding=True)
    conf = render("base", "sshd.conf", settings=off, allow_groups=allow_groups(off))
    assert "AllowGroups" not in conf and "Banner" not in conf
    assert "AllowTcpForwarding yes" in conf


def test_a_container_gets_only_network_namespaced_sysctls():
    """kernel.*, fs.* (and the rest) are the machine's: a privileged sandbox host must not
    write them. Listed as comments, so the file says what a VM would get."""
    from roles.base.hardening import sysctls

    everything, none_skipped = sysctls(Settings(), {"virt": "none"})
    assert none_skipped == {} and everything["kernel.kexec_load_disabled"] == 1
    written, skipped = sysctls(Settings(), {"virt": "podman"})
    assert written and all(key.startswith(("net.ipv4.", "net.ipv6.")) for key in written)
    assert {"kernel.kexec_load_disabled", "kernel.unprivileged_bpf_disabled",
            "fs.suid_dumpable", "fs.protected_symlinks"} <= set(skipped)
    assert written.keys() | skipped.keys() == everything.keys()
    conf = render("base", "sysctl.conf", sysctls=written, skipped=skipped, virt="podman")
    assert "\nkernel." not in conf and "# kernel.kexec_load_disabled = 1" in conf
