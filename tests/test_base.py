"""base on real sandbox hosts: idempotence, firewall behaviour, sshd, testinfra checks."""


import pytest

from keel import ROOT
from keel.lab import sandbox
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DATA = ROOT / "roles/base/tests/data.py"


@pytest.fixture(scope="module")
def converged(sandbox_hosts, harness):
    target, peer = sandbox_hosts("t-base1", "t-base2")
    inventory = harness.inventory({"app": [target], "peers": [peer]}, data_files=[DATA])
    runs = harness.assert_idempotent(inventory, "deploys/base.py")
    return target, peer, runs


def test_first_run_changes_then_nothing(converged):
    _, _, (first, second, plan) = converged
    assert set(first.changed()) == {"t-base1", "t-base2"}
    assert second.changed() == {} and plan.changed() == {}


def test_testinfra_checks(converged):
    target, _, _ = converged
    result = run_testinfra([target], ROOT / "roles/base/tests")
    assert result.returncode == 0, result.stdout + result.stderr


def _listen(host, *ports):
    for port in ports:
        ssh(host, f"systemd-run --unit=listen-{port} python3 -m http.server {port}")
    for port in ports:
        assert ssh(host, f"for i in $(seq 50); do ss -ltn | grep -q ':{port} ' && exit 0; "
                         "sleep 0.1; done; exit 1").returncode == 0


def _reachable(src, dst, port) -> bool:
    probe = (f"python3 -c \"import socket; socket.create_connection(('{dst.address}', {port}), "
             "timeout=2)\"")
    return ssh(src, probe).returncode == 0


def test_firewall_declared_and_undeclared_ports(converged):
    target, peer, _ = converged
    _listen(target, 8080, 8081, 8082)
    assert _reachable(peer, target, 8080), "declared port (peers only) refused from a peer"
    assert _reachable(peer, target, 8082), "declared port (any source) refused"
    assert not _reachable(peer, target, 8081), "undeclared port reachable"
    # 8080 is restricted to group:peers; t-base2 is not in it, so from there it is closed.
    assert not _reachable(target, peer, 8080)


def test_sshd_refuses_password_auth(converged):
    target, _, _ = converged
    import subprocess

    proc = subprocess.run(
        ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "PubkeyAuthentication=no", "-o", "BatchMode=yes",
         "-o", "PreferredAuthentications=password,keyboard-interactive",
         f"root@{target.address}", "true"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert proc.returncode == 255
    assert "Permission denied (publickey)" in proc.stderr


def _ssh_with(target, *options):
    import subprocess

    return subprocess.run(
        # LogLevel INFO: the sandbox's ssh_config (ERROR) would hide why a connection fails.
        ["ssh", "-F", str(sandbox.ssh_config()), "-o", "LogLevel=INFO", *options,
         f"root@{target.address}", "true"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)


def test_sshd_refuses_a_weak_cipher(converged):
    """A client that offers only CBC (or only an SHA-1 MAC) finds no common algorithm."""
    target, _, _ = converged
    assert _ssh_with(target).returncode == 0, "baseline: the usual client must get in"
    weak = _ssh_with(target, "-c", "aes128-cbc")
    assert weak.returncode == 255 and "no matching cipher found" in weak.stderr, weak.stderr
    weak = _ssh_with(target, "-o", "MACs=hmac-sha1", "-c", "aes128-ctr")
    assert weak.returncode == 255 and "no matching MAC found" in weak.stderr, weak.stderr


def test_plan_names_the_audit_skip(converged):
    """A container has no kernel audit of its own: the run says so and carries on."""
    _, _, (first, _, plan) = converged
    assert "Skip auditd: the kernel offers no audit here" in first.output
    assert "Skip auditd" in plan.output


def test_firewall_survives_reload(converged):
    """Loading the rules again keeps the host reachable (only keel's table is replaced)."""
    target, _, _ = converged
    assert ssh(target, "nft -f /etc/nftables.conf && nft list tables").stdout.count("keel") == 1


# A small library whose security update is in bookworm-security and whose older version is
# still in bookworm main: downgrading it makes a real pending security update.
DOWNGRADE = r"""
for p in libzstd1 liblzma5 libtasn1-6 libexpat1; do
    old=$(apt-cache madison "$p" | awk -F' [|] ' '$3 !~ /-security/ {print $2; exit}')
    new=$(apt-cache madison "$p" | awk -F' [|] ' '$3 ~ /-security/ {print $2; exit}')
    if [ -n "$old" ] && [ -n "$new" ] && [ "$old" != "$new" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades \
            "$p=$old" >/dev/null 2>&1 && echo "$p $new" && exit 0
    fi
done
exit 1
"""


def test_pending_security_update_shown_then_applied(converged, harness):
    """A plan names a pending security update; the next converge applies it (runs last: it
    converges the peer again)."""
    target, peer, _ = converged
    picked = ssh(peer, DOWNGRADE, timeout=180)
    assert picked.returncode == 0, f"no downgradable package with a security update: {picked}"
    package, version = picked.stdout.split()
    inventory = harness.inventory({"app": [target], "peers": [peer]}, data_files=[DATA])
    plan = harness.run(inventory, "deploys/base.py", dry=True, diff=True).check()
    assert f"pending security updates ({package})" in plan.output
    harness.converge(inventory, "deploys/base.py")
    installed = ssh(peer, f"dpkg-query -W -f '${{Version}}' {package}").stdout
    assert installed == version
