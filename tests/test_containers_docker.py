"""Containers on docker (docker.io 20.10): the agent stack on a privileged sandbox host.

Inside a sandbox host dockerd needs crun as its default runtime (runc cannot mount the
cgroup filesystem there) and fuse-overlayfs storage; group_data/sandbox.py sets both.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from containers_data import secret_values, stack

from keel import ROOT
from keel.cli import rollout
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/containers.py"


@pytest.fixture(scope="module")
def env(sandbox_hosts, harness, secrets_env):
    data = {"container_runtime_engine": "docker", "app_engine": "docker", **stack("agent")}
    for name, value in secret_values(data).items():
        secrets_env.set(name, value)
    (host,) = sandbox_hosts("c-dock1", privileged=True)
    inv = harness.inventory({"app": [host]}, data=data)
    runs = harness.assert_idempotent(inv, DEPLOY)
    return host, inv, runs


def test_converges_then_no_changes(env):
    _, _, (first, second, plan) = env
    assert "c-dock1" in first.changed()
    assert second.changed() == {} and plan.changed() == {}


def test_agent_healthy_and_serving(env):
    host, inv, _ = env
    status = rollout.status(inv)["c-dock1"]["agent"]
    assert (status["engine"], status["state"], status["health"]) == ("docker", "running",
                                                                     "healthy")
    with urllib.request.urlopen(f"http://{host.address}:8000/health", timeout=5) as resp:
        assert json.load(resp)["ok"]


def test_testinfra_checks(env):
    host, _, _ = env
    result = run_testinfra([host], ROOT / "roles/container_runtime/tests",
                           ROOT / "roles/app/tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_limits_and_hardening_in_inspect(env):
    host, _, _ = env
    fmt = ("{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.Config.User}} "
           "{{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.CapDrop}} "
           "{{json .HostConfig.SecurityOpt}} {{.HostConfig.LogConfig.Type}}")
    out = ssh(host, f"docker inspect agent --format '{fmt}'").stdout.split()
    assert out == ["2000000000", str(2 << 30), "10001:10001", "true", '["ALL"]',
                   '["no-new-privileges"]', "json-file"]


def test_killed_container_is_restarted(env):
    host, inv, _ = env
    before = rollout.status(inv)["c-dock1"]["agent"]
    assert ssh(host, "docker kill agent").returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = rollout.status(inv)["c-dock1"]["agent"]
        if now["restarts"] > before["restarts"] and now["health"] == "healthy":
            break
        time.sleep(1)
    assert now["restarts"] == before["restarts"] + 1 and now["health"] == "healthy"
