"""Plan, drift and targeted fixes on a small sandbox fleet (e-app1 in app and edge; e-db1 in
db, cache and mon).

The fleet converges once; the tests then run in order on it: a plan of the converged fleet,
a hand edit that the plan and `keel drift` show and a converge repairs, a `--limit` run that
touches one host only, and a secret-bearing file whose diff is masked.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time

import pytest

from keel import ROOT
from keel.core.inventory import load
from keel.core.roles import SITE
from keel.lab import sandbox
from keel.lab.testing import BIN, ssh

pytestmark = pytest.mark.sandbox

# The mechanisms are role-agnostic; base is the role every host has and converges fast.
DEPLOY = "deploys/base.py"
JOURNALD = "/etc/systemd/journald.conf.d/keel.conf"


def keel(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "keel"), *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def fleet(sandbox_hosts, harness, secrets_env):
    app, db = sandbox_hosts("e-app1", "e-db1")
    # The secret test delivers a file no role declares: keep the secrets role from pruning it.
    inventory = harness.inventory({"app": [app], "edge": [app], "db": [db], "cache": [db],
                                   "mon": [db]},
                                  data={"secrets_prune": False}, name="fleet")
    # The secrets the fleet's roles need, generated as `make up` does for the sandbox.
    ensure = keel("secrets", "ensure", "sandbox", str(inventory))
    assert ensure.returncode == 0, ensure.stderr
    first = harness.converge(inventory, DEPLOY)
    assert set(first.changed()) == {"e-app1", "e-db1"}
    return app, db, inventory


def plan(inventory, tmp_path, *args: str, deploy: str = DEPLOY,
         env: dict | None = None) -> dict:
    proc = keel("plan", str(inventory), "--deploy", deploy, "--out", str(tmp_path), *args,
                env=env)
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / f"{inventory.stem}.json").read_text())
    document["markdown"] = (tmp_path / f"{inventory.stem}.md").read_text()
    document["stdout"], document["stderr"] = proc.stdout, proc.stderr
    return document


def test_plan_of_a_converged_fleet_is_empty(fleet, tmp_path):
    _, _, inventory = fleet
    result = plan(inventory, tmp_path)
    assert result["summary"] == {"hosts": 2, "hosts_with_changes": 0, "changes": 0}
    assert all(h["changes"] == [] and h["files"] == [] for h in result["hosts"].values())
    assert "2 hosts checked; 0 would change (0 operations)." in result["markdown"]
    assert result["stdout"] == result["markdown"]
    drift = keel("drift", str(inventory), "--deploy", DEPLOY)
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert "no drift on 2 hosts (e-app1, e-db1)" in drift.stdout


def test_hand_edit_shows_in_plan_and_drift_then_converge_repairs(fleet, harness, tmp_path):
    _, db, inventory = fleet
    wanted = load(inventory).host("e-db1").values["base_journald_max_use"]
    assert ssh(db, f"sed -i 's/^SystemMaxUse=.*/SystemMaxUse=5G/' {JOURNALD}").returncode == 0

    result = plan(inventory, tmp_path)
    assert result["summary"]["hosts_with_changes"] == 1
    host = result["hosts"]["e-db1"]
    assert host["changes"] == [{"role": "base", "operation": "Cap journald disk use"}]
    assert host["conditional"][0] == {"role": "base", "operation": "Restart journald"}
    assert host["files"] == [{"path": JOURNALD, "action": "modify", "diff": [
        "@@ -1,3 +1,3 @@", "  # managed by keel: roles/base", "  [Journal]",
        "- SystemMaxUse=5G", f"+ SystemMaxUse={wanted}"]}]
    assert result["hosts"]["e-app1"]["changes"] == []
    assert "| e-db1 | 1 | base |" in result["markdown"]
    assert "- Cap journald disk use\n- and if what triggers them changes: Restart journald" \
        in result["markdown"]

    drift = keel("drift", str(inventory), "--deploy", DEPLOY)
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert drift.stdout.splitlines()[:3] == [
        "e-db1: 1 operation would change", "  base | Cap journald disk use",
        f"    modify {JOURNALD}"]

    repair = harness.converge(inventory, DEPLOY)
    assert repair.changed() == {"e-db1": ["base | Cap journald disk use",
                                          "base | Restart journald"]}
    assert ssh(db, f"grep -x SystemMaxUse={wanted} {JOURNALD}").returncode == 0
    assert keel("drift", str(inventory), "--deploy", DEPLOY).returncode == 0


def _mark(*hosts: sandbox.Host) -> int:
    """A whole second from which on the hosts' journals hold only what comes next."""
    for host in hosts:  # every message logged so far is stamped and written
        sandbox.podman("exec", sandbox.container_name(host.name), "journalctl", "--sync")
    since = math.ceil(time.time())
    time.sleep(since - time.time() + 0.1)
    return since


def _sshd_logins(host: sandbox.Host, since: int) -> list[str]:
    """Logins on the host since a time, read from its journal without logging in."""
    out = sandbox.podman("exec", sandbox.container_name(host.name), "journalctl", "-u", "ssh",
                         "--no-pager", "-o", "cat", "--since", f"@{since}").stdout
    return [line for line in out.decode().splitlines() if "Accepted" in line]


def test_limit_touches_only_that_host(fleet, harness):
    app, db, inventory = fleet
    # Drift on both hosts: the run must repair e-db1 and leave e-app1 as it is.
    for host in (app, db):
        ssh(host, f"sed -i 's/^SystemMaxUse=.*/SystemMaxUse=5G/' {JOURNALD}")
    since = _mark(app, db)
    run = harness.converge(inventory, DEPLOY, args=["--limit", "e-db1"])
    assert set(run.changed()) == {"e-db1"}
    assert {name for op in run.document["results"]["operations"]
            for name in op["success"] + op["no_change"]} == {"e-db1"}
    assert "[e-app1]" not in run.stderr
    assert _sshd_logins(app, since) == [], "the run logged in to e-app1"
    assert _sshd_logins(db, since), "the run never logged in to e-db1"
    assert ssh(app, f"grep -x SystemMaxUse=5G {JOURNALD}").returncode == 0
    # Then the targeted fix for e-app1.
    fix = harness.converge(inventory, DEPLOY, args=["--limit", "e-app1"])
    assert set(fix.changed()) == {"e-app1"}


@pytest.mark.parametrize("limit", ["e-app1", "e-db1"])
def test_every_role_deploy_honours_limit(fleet, limit):
    """Each deploys/<role>.py plans for the limited host alone, contacting no other host."""
    app, db, inventory = fleet
    other = app if limit == "e-db1" else db
    since = _mark(other)
    proc = subprocess.run(
        [str(BIN / "pyinfra"), "--dry", "--json", "--limit", limit, str(inventory),
         *[f"deploys/{role}.py" for role in SITE]],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert {name for op in json.loads(proc.stdout)["plan"]
            for name in op["hosts_with_change"] + op["hosts_with_conditional_change"]} <= {limit}
    assert f"[{limit}]" in proc.stderr and f"[{other.name}]" not in proc.stderr
    assert _sshd_logins(other, since) == []


def test_secret_bearing_file_diff_is_masked(fleet, harness, secrets_env, tmp_path):
    _, db, inventory = fleet
    deploy, path = "tests/deploys/secret_file.py", "/run/keel/secrets/test/app.env"
    first, second = "tok-first-9f2c1d", "tok-second-77ab30"
    secrets_env.set("test_token", first)
    harness.converge(inventory, deploy, args=["--limit", "e-db1"])
    assert ssh(db, f"stat -c '%U %G %a' {path}").stdout.split() == ["root", "root", "400"]

    # A rotated token: the plan names the line that changes, and shows no value.
    secrets_env.set("test_token", second)
    outputs = []
    for extra in ([], ["-vvv"], ["--debug"]):
        run = harness.run(inventory, deploy, dry=True, diff=True, as_json=not extra,
                          args=["--limit", "e-db1", *extra])
        assert run.returncode == 0, run.stderr
        outputs.append(run.output)
    result = plan(inventory, tmp_path, "--limit", "e-db1", deploy=deploy)
    assert result["hosts"]["e-db1"]["files"] == [{"path": path, "action": "modify", "diff": [
        "@@ -1,4 +1,4 @@ (values masked)", "  ********", "  USER=********",
        "- TOKEN=********", "+ TOKEN=********", "  PORT=********"]}]
    outputs += [result["stdout"], result["stderr"], result["markdown"]]
    for text in outputs:
        assert first not in text and second not in text
        assert "USER=app" not in text
    assert "TOKEN=********" in outputs[0]
