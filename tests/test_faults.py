"""Faults on real sandbox hosts (issue #20), two hosts sharing their converge:

- a host lost mid-run (its init killed from outside) during facts, during an apt install and
  during a restart: the other host finishes, the report names the lost host, the exit code is
  non-zero, and with the host back a re-run converges and the next one changes nothing;
- the controller killed (`kill -9`) mid-run at several points: a re-run converges, no unit is
  left failed and no temporary file is left beside a managed file;
- a full disk under a config directory during a write: the old file stays whole, the service
  keeps running, the host fails alone.

Slow (a dozen runs of base): `make test-faults`, not part of `make test`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from keel import ROOT
from keel.lab.sandbox import container_name
from keel.lab.testing import BIN, ssh

pytestmark = [pytest.mark.sandbox, pytest.mark.faults]
DEPLOY = "deploys/base.py"
LOST = "f-base2"


@pytest.fixture(scope="module")
def hosts(sandbox_hosts):
    return sandbox_hosts("f-base1", "f-base2")


@pytest.fixture(scope="module")
def converged(hosts, harness):
    inventory = harness.inventory({"app": hosts}, name="faults")
    harness.converge(inventory, DEPLOY)
    return hosts


def _inventory(harness, hosts, name: str, data: dict):
    return harness.inventory({"app": hosts}, data=data, name=name)


def _run_until(inventory, marker: str, then, delay: float = 0.0):
    """Run base with pyinfra; when a line of its output has every word of marker (operation
    names are set in bold between them), call then(proc)."""
    proc = subprocess.Popen(
        [str(BIN / "pyinfra"), "-y", str(inventory), DEPLOY], cwd=ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, fired = [], False
    for line in proc.stdout:
        lines.append(line)
        if not fired and all(word in line for word in marker.split("|")):
            fired = True
            time.sleep(delay)
            then(proc)
    proc.wait(timeout=900)
    assert fired, f"{marker!r} never appeared:\n" + "".join(lines)
    return proc.returncode, "".join(lines)


def _power_cut(host):
    """What loses the host: its init killed from outside, as a power cut would, at once
    (`podman stop` can take seconds under load, and the run could finish first)."""
    pid = int(subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}",
                              container_name(host)], capture_output=True, text=True,
                             check=True).stdout)
    return lambda proc: os.kill(pid, signal.SIGKILL)


def _bring_back(host) -> None:
    """Start the lost host again and wait until it answers SSH."""
    for _ in range(30):  # podman may still be cleaning up after the stop
        started = subprocess.run(["podman", "start", container_name(LOST)],
                                 capture_output=True, text=True)
        if started.returncode == 0:
            break
        time.sleep(2)
    assert started.returncode == 0, started.stderr
    for _ in range(90):
        try:
            if ssh(host, "systemctl is-system-running --wait", timeout=20).stdout.strip() in (
                    "running", "degraded"):
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)
    raise AssertionError(f"{LOST} did not come back")


def _converges(harness, inventory) -> None:
    harness.converge(inventory, DEPLOY)
    again = harness.converge(inventory, DEPLOY)
    assert again.changed() == {}, f"second run changed: {again.changed()}"


def _healthy(hosts) -> None:
    for host in hosts:
        failed = ssh(host, "systemctl --failed --no-legend --plain").stdout.strip()
        assert failed == "", f"{host.name}: failed units: {failed}"
        left = ssh(host, "find /etc -name '.*.keel-new*' | head").stdout.strip()
        assert left == "", f"{host.name}: temporary files left: {left}"


# A restart of journald that takes 5 s on the host to be lost, so that the stop lands inside
# it even when podman is slow to stop a host (a runtime drop-in: gone once the host restarts).
SLOW_RESTART = ("mkdir -p /run/systemd/system/systemd-journald.service.d && printf "
                "'[Service]\\nExecStartPre=/bin/sleep 5\\n' > "
                "/run/systemd/system/systemd-journald.service.d/slow.conf && "
                "systemctl daemon-reload")

# (marker in pyinfra's output, seconds after it, data that makes the run change something,
# a command that prepares the host to be lost)
LOSSES = {
    # Right after it connects: the stop lands while pyinfra reads its facts for the plan.
    "during facts": ("[f-base2] Connected", 0.0, {"base_sysctl": {"vm.swappiness": 11}}, None),
    "during an apt install": ("Starting|operation:|Install base packages", 2.0,
                              {"base_extra_packages": ["htop"]}, None),
    "during a restart": ("Starting|operation:|Restart journald", 1.0,
                         {"base_journald_max_use": "150M"}, SLOW_RESTART),
}


@pytest.mark.parametrize("name", LOSSES)
def test_lost_host_fails_alone(converged, harness, name):
    marker, delay, data, prepare = LOSSES[name]
    inventory = _inventory(harness, converged, name.replace(" ", "_"), data)
    if prepare:
        prepared = ssh(converged[1], prepare)
        assert prepared.returncode == 0, prepared.stderr
    try:
        code, output = _run_until(inventory, marker, _power_cut(LOST), delay)
        assert code != 0, output
        assert "internal exception" not in output.lower(), output
        named = [line for line in output.splitlines() if LOST in line
                 and any(word in line for word in ("rror", "failed", "lost", "Could not"))]
        assert named, output  # the report names the lost host
        # The healthy host finished its run: with the lost one out, nothing is left to do.
        rest = harness.converge(inventory, DEPLOY, args=["--limit", "f-base1"])
        assert rest.changed() == {}, f"f-base1 did not finish: {rest.changed()}"
    finally:
        _bring_back(converged[1])
    _converges(harness, inventory)
    _healthy(converged)


KILLS = {
    "while loading facts": ("--> Preparing operation files", 0.5,
                            {"base_journald_max_use": "160M"}),
    "while writing files": ("Starting|operation:|Cap journald disk use", 0.0,
                            {"base_journald_max_use": "170M"}),
    "during a restart": ("Starting|operation:|Restart journald", 0.0,
                         {"base_journald_max_use": "180M"}),
}


@pytest.mark.parametrize("name", KILLS)
def test_controller_killed(converged, harness, name):
    marker, delay, data = KILLS[name]
    inventory = _inventory(harness, converged, "kill_" + name.replace(" ", "_"), data)
    code, _ = _run_until(inventory, marker, lambda p: os.kill(p.pid, signal.SIGKILL), delay)
    assert code == -signal.SIGKILL
    _converges(harness, inventory)
    _healthy(converged)


def test_full_disk_keeps_the_old_file(converged, harness):
    """A 64 KiB tmpfs over journald's drop-in directory, filled: the new file cannot be
    written, the old one stays whole, journald keeps running, the other host converges."""
    host = converged[1]
    directory = "/etc/systemd/journald.conf.d"
    before = ssh(host, f"cat {directory}/keel.conf").stdout
    setup = (f"cp -a {directory} /root/journald.keep && mount -t tmpfs -o size=64k tmpfs "
             f"{directory} && cp -a /root/journald.keep/. {directory}/ && "
             f"(dd if=/dev/zero of={directory}/fill bs=4k 2>/dev/null; true)")
    mounted = subprocess.run(["podman", "exec", "--privileged", container_name(host.name),
                              "sh", "-c", setup], capture_output=True, text=True)
    assert mounted.returncode == 0, mounted.stderr
    try:
        inventory = _inventory(harness, converged, "full_disk",
                               {"base_journald_max_use": "190M"})
        run = harness.run(inventory, DEPLOY)
        assert run.returncode != 0, run.output
        assert "internal exception" not in run.output.lower(), run.output
        assert ssh(host, f"cat {directory}/keel.conf").stdout == before
        assert ssh(host, "systemctl is-active systemd-journald").stdout.strip() == "active"
        assert "190M" in ssh(converged[0], f"cat {directory}/keel.conf").stdout
    finally:
        subprocess.run(["podman", "exec", "--privileged", container_name(host.name), "sh", "-c",
                        f"umount {directory}; rm -rf /root/journald.keep"], capture_output=True)
    _converges(harness, inventory)
    _healthy(converged)


def test_interrupted_dpkg_is_finished(converged, harness):
    """A package unpacked and never configured, as a host lost during an install leaves it:
    apt refuses to install until dpkg's run is finished; the next converge finishes it, and
    the one after changes nothing."""
    host = converged[1]
    cut = ssh(host, "cd /tmp && apt-get download -q tree && dpkg --unpack tree_*.deb && "
                    "rm -f tree_*.deb && dpkg --audit", timeout=300)
    assert "tree" in cut.stdout, cut.stdout + cut.stderr
    inventory = _inventory(harness, converged, "dpkg", {})
    first = harness.converge(inventory, DEPLOY)
    assert "base | Finish the dpkg run that was cut short" in first.changed().get(host.name, []), \
        first.changed()
    assert ssh(host, "dpkg --audit").stdout.strip() == ""
    assert harness.converge(inventory, DEPLOY).changed() == {}
    _healthy(converged)
