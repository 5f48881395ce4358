"""A host lost mid-run fails alone (issue #20), on real sandbox hosts: `podman stop -t 0` of
one host during a base run; the other finishes, the report names the lost host, the exit code
is non-zero, and with the host back a re-run converges and the next one changes nothing.

Slow (several converges of base): `make test-faults`, not part of `make test`.
"""

from __future__ import annotations

import subprocess
import threading

import pytest

from keel.lab.sandbox import container_name

pytestmark = [pytest.mark.sandbox, pytest.mark.faults]
DEPLOY = "deploys/base.py"


@pytest.fixture(scope="module")
def hosts(sandbox_hosts):
    return sandbox_hosts("f-base1", "f-base2")


@pytest.fixture(scope="module")
def inventory(hosts, harness):
    return harness.inventory({"app": hosts}, name="faults")


def _stop_after(host: str, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, subprocess.run, args=(
        ["podman", "stop", "-t", "0", container_name(host)],), kwargs={"capture_output": True})
    timer.start()
    return timer


@pytest.mark.parametrize("delay", [3, 25], ids=["during facts", "during apt"])
def test_lost_host_fails_alone(hosts, inventory, harness, delay):
    timer = _stop_after("f-base2", delay)
    try:
        run = harness.run(inventory, DEPLOY, timeout=900)
    finally:
        timer.join()
    assert run.returncode != 0, run.output
    assert "internal exception" not in run.output.lower(), run.output
    assert "f-base2" in run.stderr, run.stderr
    again = harness.run(inventory, DEPLOY, args=["--limit", "f-base1"])
    assert again.returncode == 0, again.output
    assert again.changed().get("f-base1", []) == [], "f-base1 did not finish its run"
    subprocess.run(["podman", "start", container_name("f-base2")], check=True,
                   capture_output=True)
    subprocess.run(["sleep", "3"], check=True)
    back = harness.run(inventory, DEPLOY)
    assert back.returncode == 0, back.output
    assert harness.run(inventory, DEPLOY).changed() == {}
