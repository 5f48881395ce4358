"""Secrets on real hosts: delivery, rotation, reboot, and that values never leak."""

import re
import secrets as random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from keel import ROOT
from keel.lab import sandbox
from keel.lab.testing import ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/secret_consumers.py"
KEEL = [str(Path(sys.executable).parent / "keel")]


def canary() -> str:
    return "keel-canary-" + random.token_hex(12)


@pytest.fixture(scope="module")
def host(sandbox_hosts):
    (target,) = sandbox_hosts("s-sec1")
    return target


@pytest.fixture(scope="module")
def inventory(harness, host):
    # The test's secrets are declared by no role: keep the secrets role from pruning them.
    return harness.inventory({"app": [host]}, data={"secrets_prune": False})


@pytest.fixture(scope="module")
def values(secrets_env):
    values = {"test_alpha": canary(), "test_beta": canary()}
    for name, value in values.items():
        secrets_env.set(name, value)
    return values


@pytest.fixture(scope="module")
def converged(harness, inventory, values):
    return harness.assert_idempotent(inventory, DEPLOY)


def _sha(host, path):
    return ssh(host, f"sha256sum < {path}").stdout.split()[0]


def _pid(host, unit):
    return ssh(host, f"systemctl show -p MainPID --value {unit}").stdout.strip()


def test_delivered_to_run_with_owner_and_mode(converged, host, values):
    out = ssh(host, "stat -c '%U %G %a %n' /run/keel/secrets/test/alpha /run/keel/secrets/test/env "
                    "/etc/keel/age/host.key /etc/keel/secrets/test/alpha.age "
                    "/etc/keel/secrets/test/alpha.meta").stdout.split("\n")
    assert out[0].startswith("nobody nogroup 400 ")
    assert out[1].startswith("root root 440 ")
    assert out[2].startswith("root root 600 ")
    assert out[3].startswith("root root 600 ")
    assert out[4].startswith("root root 600 ")
    assert ssh(host, "findmnt -n -o FSTYPE --target /run/keel/secrets").stdout.strip() == "tmpfs"
    content = ssh(host, "cat /run/keel/secrets/test/env").stdout
    assert f"ALPHA={values['test_alpha']}" in content and f"BETA={values['test_beta']}" in content
    for unit in ("keel-test-alpha", "keel-test-beta"):
        assert ssh(host, f"systemctl is-active {unit}").stdout.strip() == "active"


def test_stored_encrypted_to_the_host_identity_only(converged, host, values):
    # The host decrypts with its own key; the operator's identity cannot.
    assert ssh(host, "age -d -i /etc/keel/age/host.key /etc/keel/secrets/test/alpha.age"
               ).stdout == values["test_alpha"]
    blob = ssh(host, "base64 -w0 /etc/keel/secrets/test/alpha.age").stdout
    import base64

    import pyrage

    from keel.core import store

    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(base64.b64decode(blob), store.identities())


def test_no_plaintext_on_disk_outside_run(converged, host, values):
    for value in values.values():
        found = ssh(host, f"grep -rIl --exclude-dir=proc --exclude-dir=sys --exclude-dir=run "
                          f"--exclude-dir=dev -e '{value}' / ; true").stdout
        assert found == "", f"plaintext found in {found}"
    assert values["test_alpha"] not in (ROOT / "secrets").read_text() \
        if (ROOT / "secrets").is_file() else True


def _sampler(stop, seen, host=None):
    """Collect the argv of every process, on the controller or on a host, until stopped."""
    script = ("while [ ! -e /tmp/keel-stop ]; do for f in /proc/[0-9]*/cmdline; do "
              "tr '\\0' ' ' < $f 2>/dev/null; echo; done; done")
    if host is None:
        while not stop.is_set():
            for path in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    seen.append(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    pass
    else:
        proc = subprocess.Popen(host.ssh_argv(script), stdout=subprocess.PIPE, text=True)
        stop.wait()
        ssh(host, "touch /tmp/keel-stop")
        seen.append(proc.communicate(timeout=30)[0])
        ssh(host, "rm -f /tmp/keel-stop")


def test_rotation_restarts_only_consumers_and_never_leaks(converged, harness, inventory, host,
                                                          secrets_env):
    before = {u: _pid(host, u) for u in ("keel-test-alpha", "keel-test-beta")}
    new = canary()
    secrets_env.set("test_alpha", new)
    stop, local, remote = threading.Event(), [], []
    threads = [threading.Thread(target=_sampler, args=(stop, local)),
               threading.Thread(target=_sampler, args=(stop, remote, host))]
    for t in threads:
        t.start()
    try:
        run = harness.run(inventory, DEPLOY, as_json=False, args=["--debug"]).check()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert new not in run.output
    assert not [line for line in local if new in line], "secret in a controller argv"
    assert new not in "".join(remote), "secret in a host argv"
    assert len(local) > 100 and len("".join(remote)) > 1000  # the samplers really sampled
    after = {u: _pid(host, u) for u in before}
    assert after["keel-test-alpha"] != before["keel-test-alpha"], "consumer not restarted"
    assert after["keel-test-beta"] == before["keel-test-beta"], "non-consumer restarted"
    assert ssh(host, "cat /run/keel/secrets/test/alpha").stdout == new
    again = harness.converge(inventory, DEPLOY)
    assert again.changed() == {}


def test_diff_and_plan_never_show_values(converged, harness, inventory, secrets_env):
    new = canary()
    secrets_env.set("test_beta", new)
    plan = harness.run(inventory, DEPLOY, dry=True, diff=True, as_json=False, args=["-vvv"])
    assert plan.returncode == 0, plan.output
    assert new not in plan.output
    assert re.search(r"Deliver test_beta", plan.output)
    applied = harness.run(inventory, DEPLOY, diff=True, as_json=False, args=["-vvv"]).check()
    assert new not in applied.output


def test_converges_as_an_admin_with_sudo(converged, harness, host, secrets_env):
    """As a cloud host is reached (inventories/vm.py): an admin with sudo, not root. Files go
    up as the admin and root moves them into place, managed files and secrets alike."""
    ssh(host, "useradd -m -G admins cloud && install -d -o cloud -m 0700 /home/cloud/.ssh && "
              "install -o cloud -m 0600 /root/.ssh/authorized_keys /home/cloud/.ssh/ && "
              "rm /etc/needrestart/conf.d/keel.conf")
    new = canary()
    secrets_env.set("test_alpha", new)
    inventory = harness.inventory({"app": [host]}, data={"secrets_prune": False}, name="sudo",
                                  host_data={host.name: {"ssh_user": "cloud", "_sudo": True}})
    run = harness.converge(inventory, DEPLOY)
    changed = " / ".join(run.changed().get(host.name, []))
    assert "needrestart: list, do not restart" in changed and "Deliver test_alpha" in changed
    assert ssh(host, "stat -c '%U %G %a' /etc/needrestart/conf.d/keel.conf").stdout == \
        "root root 644\n"
    assert ssh(host, "cat /run/keel/secrets/test/alpha").stdout == new
    assert ssh(host, "ls -a /etc/needrestart/conf.d /etc/keel/secrets/test | grep keel-new"
               ).stdout == ""
    assert harness.converge(inventory, DEPLOY).changed() == {}


def test_secrets_back_after_host_restart(converged, host, harness, inventory):
    digest = _sha(host, "/run/keel/secrets/test/alpha")
    assert sandbox.restart(host.name).address == host.address
    assert _sha(host, "/run/keel/secrets/test/alpha") == digest
    assert ssh(host, "stat -c %U /run/keel/secrets/test/alpha").stdout.strip() == "nobody"
    assert ssh(host, "systemctl is-active keel-test-alpha").stdout.strip() == "active"
    assert harness.converge(inventory, DEPLOY).changed() == {}
