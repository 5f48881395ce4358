"""Containers on podman: the three reference stacks on real (privileged) sandbox hosts.

c-app1 runs the web stack, the multi-agent pod and the agent; c-app2 runs the agent only.
One converge of tests/deploys/containers.py (base, secrets, container_runtime, app), its
idempotence re-run and plan; then behaviour: health, start order, network isolation,
limits, restarts, secrets, a change that recreates one service, and a rolling update that
stops at the first unhealthy host. The tests run in file order and share the hosts.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.request

import pytest
from containers_data import secret_values, stack

from keel import ROOT
from keel.cli import rollout
from keel.lab.testing import BIN, run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/containers.py"
WEB = ["db", "cms", "api", "frontend"]
POD = ["claude", "grok", "gemini"]


def host_stacks(agent_build: dict | None = None, api_env: dict | None = None) -> dict:
    full, agent = stack("web_stack", "multi_agent", "agent"), stack("agent")
    for data in (full, agent):
        if agent_build:
            data["app_services"]["agent"]["build"] = agent_build
        if api_env and "api" in data["app_services"]:
            data["app_services"]["api"]["environment"].update(api_env)
    return {"c-app1": full, "c-app2": agent}


@pytest.fixture(scope="module")
def env(sandbox_hosts, harness, secrets_env):
    values = secret_values(host_stacks()["c-app1"])
    for name, value in values.items():
        secrets_env.set(name, value)
    hosts = sandbox_hosts("c-app1", "c-app2", privileged=True)

    def inventory(**changes):
        return harness.inventory({"app": hosts}, host_data=host_stacks(**changes))

    inv = inventory()
    started = time.monotonic()
    runs = harness.assert_idempotent(inv, DEPLOY)
    return {"hosts": {h.name: h for h in hosts}, "inv": inv, "inventory": inventory,
            "runs": runs, "converge_s": time.monotonic() - started, "values": values}


def podman(host, command: str) -> str:
    proc = ssh(host, f"podman {command}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def inspect(host, name: str, fmt: str) -> str:
    return podman(host, f"inspect {name} --format '{fmt}'")


def http_json(host, port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://{host.address}:{port}{path}", timeout=5) as resp:
        return json.load(resp)


def test_converges_then_no_changes(env):
    first, second, plan = env["runs"]
    assert set(first.changed()) == {"c-app1", "c-app2"}
    assert second.changed() == {} and plan.changed() == {}


def test_every_service_healthy(env):
    status = rollout.status(env["inv"])
    assert sorted(status["c-app1"]) == sorted(WEB + POD + ["agent"])
    assert sorted(status["c-app2"]) == ["agent"]
    for services in status.values():
        for name, s in services.items():
            assert (s["state"], s["unit"], s["health"]) == ("running", "active", "healthy"), name


def test_testinfra_checks(env):
    result = run_testinfra([env["hosts"]["c-app1"]], ROOT / "roles/container_runtime/tests",
                           ROOT / "roles/app/tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_frontend_serves_through_api_and_cms(env):
    app1 = env["hosts"]["c-app1"]
    assert http_json(app1, 80, "/health")["ok"]
    assert http_json(app1, 80, "/upstream/api")["name"] == "api"
    assert http_json(app1, 80, "/upstream/cms")["name"] == "cms"


def _can_connect(host, src: str, dst: str, port: int) -> bool:
    probe = (f"import socket; socket.create_connection(('{dst}', {port}), timeout=2)")
    return ssh(host, f"podman exec {src} python3 -c \"{probe}\"").returncode == 0


def test_network_isolation(env):
    app1 = env["hosts"]["c-app1"]
    db_ip = inspect(app1, "db", "{{.NetworkSettings.Networks.backend.IPAddress}}")
    assert _can_connect(app1, "cms", "db", 5432)
    assert _can_connect(app1, "frontend", "api", 3001)
    assert not _can_connect(app1, "frontend", "db", 5432), "frontend resolves the database"
    assert not _can_connect(app1, "frontend", db_ip, 5432), "frontend reaches the database"
    assert not _can_connect(app1, "claude", "cms", 1337), "the pod reaches the web stack"
    # The pod's agents share their network and reach each other by name.
    upstream = ssh(app1, "curl -sf http://127.0.0.1:8101/upstream/gemini").stdout
    assert json.loads(upstream)["name"] == "gemini"


def test_limits_and_hardening_in_inspect(env):
    app1 = env["hosts"]["c-app1"]
    fmt = ("{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} "
           "{{.HostConfig.PidsLimit}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}} "
           "{{json .HostConfig.CapAdd}} {{json .HostConfig.SecurityOpt}}")
    assert inspect(app1, "cms", fmt).split() == [
        "2000000000", str(1 << 30), str(512 << 20), "512", "10001:10001", "true", "[]",
        '["no-new-privileges"]']
    assert inspect(app1, "frontend", "{{.HostConfig.Memory}}") == str(256 << 20)
    # No capability is left: the effective set of the service's process is empty.
    assert podman(app1, "exec cms grep CapEff /proc/1/status").split()[1] == "0" * 16
    assert ssh(app1, "podman exec cms touch /usr/x").returncode != 0, "root fs is writable"


def test_volumes_owned_and_critical_marked(env):
    app1 = env["hosts"]["c-app1"]
    for volume in ("database", "uploads", "cms_cache", "api_cache", "nginx_cache"):
        path = podman(app1, f"volume inspect {volume} --format '{{{{.Mountpoint}}}}'")
        assert ssh(app1, f"stat -c '%u:%g %a' {path}").stdout.strip() == "10001:10001 750"
    labels = podman(app1, "volume ls --filter label=keel.critical=true --format '{{.Name}}'")
    assert sorted(labels.split()) == ["agent_data", "database", "uploads"]
    assert ssh(app1, "stat -c '%u:%g %a' /srv/ai/claude").stdout.strip() == "10001:10001 750"


def _started_at(host, unit: str) -> float:
    """When systemd last finished starting the unit: after its health check passed."""
    out = ssh(host, f"journalctl -u {unit} -o json --output-fields=MESSAGE --no-pager").stdout
    times = [int(e["__REALTIME_TIMESTAMP"]) / 1e6 for e in map(json.loads, out.splitlines())
             if str(e.get("MESSAGE", "")).startswith("Started ")]
    return times[-1]


def _container_started(host, name: str) -> float:
    return float(ssh(host, f"date -d \"$(podman inspect {name} --format "
                           "'{{.State.StartedAt}}' | cut -d' ' -f1,2)\" +%s.%N").stdout)


def test_start_order_follows_health(env):
    """As at boot: starting the frontend alone brings up db, cms, api first, each healthy."""
    app1 = env["hosts"]["c-app1"]
    units = " ".join(f"app-{s}.service" for s in WEB)
    assert ssh(app1, f"systemctl stop {units} && systemctl start app-frontend.service",
               timeout=300).returncode == 0
    for dep, svc in [("db", "cms"), ("cms", "api"), ("api", "frontend"), ("cms", "frontend")]:
        assert _started_at(app1, f"app-{dep}.service") <= _container_started(app1, svc), \
            f"{svc} started before {dep} was healthy"
    assert all(inspect(app1, s, "{{.State.Health.Status}}") == "healthy" for s in WEB)


def test_killed_container_is_restarted(env):
    app1 = env["hosts"]["c-app1"]
    before = rollout.status(env["inv"], ["c-app1"])["c-app1"]["grok"]
    podman(app1, "kill grok")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = rollout.status(env["inv"], ["c-app1"])["c-app1"]["grok"]
        if now["restarts"] > before["restarts"] and now["health"] == "healthy":
            break
        time.sleep(1)
    assert now["restarts"] == before["restarts"] + 1 and now["id"] != before["id"]
    assert now["health"] == "healthy"


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_secrets_reach_services_as_files_only(env):
    app1, values = env["hosts"]["c-app1"], env["values"]
    claude = json.loads(ssh(app1, "curl -sf http://127.0.0.1:8101/info").stdout)
    assert claude["digests"]["ANTHROPIC_API_KEY"] == _sha(values["agent_claude_api_key"])
    db = json.loads(ssh(app1, "curl -sf http://127.0.0.1:5433/info").stdout)
    assert db["digests"]["/run/secrets/postgres_password"] == _sha(values["web_postgres_password"])
    modes = ssh(app1, "stat -c '%U %a' /run/keel/secrets/app/db/web_postgres_password "
                      "/run/keel/secrets/app/claude/agent_claude_api_key /run/keel/app/claude.env")
    assert modes.stdout.split("\n")[:3] == ["app10001 400", "root 400", "root 600"]
    # No value anywhere but /run/keel: not in units, /etc, the journal, or any argv.
    for value in values.values():
        leaks = ssh(app1, f"grep -rl '{value}' /etc /var/lib/keel 2>/dev/null; "
                          f"journalctl --no-pager | grep -c '{value}'; "
                          f"ps -eo args | grep -v grep | grep -c '{value}'").stdout.split()
        assert leaks == ["0", "0"], f"a secret leaked: {leaks}"


def test_loopback_ports_are_not_reachable_from_outside(env):
    app1 = env["hosts"]["c-app1"]
    assert ssh(app1, "curl -sf http://127.0.0.1:5433/health").returncode == 0
    with pytest.raises(OSError):
        http_json(app1, 5433, "/health")


def test_env_change_recreates_only_that_service(env, harness):
    app1 = env["hosts"]["c-app1"]
    ids = {s: inspect(app1, s, "{{.Id}}") for s in WEB + POD}
    inv = env["inventory"](api_env={"LOG_LEVEL": "debug"})
    run = harness.converge(inv, "deploys/app.py")
    changed = run.changed()
    assert set(changed) == {"c-app1"}
    others = [op for op in changed["c-app1"]
              if "api" not in op and "Reload" not in op and "replaces" not in op]
    assert others == [], changed
    after = {s: inspect(app1, s, "{{.Id}}") for s in WEB + POD}
    assert [s for s in ids if ids[s] != after[s]] == ["api"]
    assert "LOG_LEVEL=debug" in podman(app1, "inspect api --format '{{json .Config.Env}}'")
    assert harness.converge(inv, "deploys/app.py").changed() == {}


def test_unit_systemd_refuses_stays_out(env, harness):
    """Each new unit passes `systemd-analyze verify` before it is live. With the engine's
    /usr/bin/podman gone (commands still find it on PATH), systemd could not run api's new
    unit: verify refuses it, the running unit and container stay, c-app1 fails alone."""
    app1 = env["hosts"]["c-app1"]
    unit = "/etc/systemd/system/app-api.service"
    before, api = ssh(app1, f"cat {unit}").stdout, inspect(app1, "api", "{{.Id}}")
    moved = ssh(app1, "mv /usr/bin/podman /usr/bin/podman.away && printf '%s\\n' '#!/bin/sh' "
                      "'exec /usr/bin/podman.away \"$@\"' > /usr/local/bin/podman && "
                      "chmod 755 /usr/local/bin/podman")
    assert moved.returncode == 0, moved.stderr
    try:
        run = harness.run(env["inventory"](api_env={"LOG_LEVEL": "warning"}), "deploys/app.py")
    finally:
        ssh(app1, "mv /usr/bin/podman.away /usr/bin/podman; rm -f /usr/local/bin/podman")
    assert run.returncode != 0, run.output
    assert run.failed_hosts() == ["c-app1"], run.output
    assert f"systemd-analyze verify {unit} failed" in run.output, run.output
    assert ssh(app1, f"cat {unit}").stdout == before
    assert inspect(app1, "api", "{{.Id}} {{.State.Status}}") == f"{api} running"
    # Nothing of the refused change is left: the earlier data converges with no change.
    assert harness.converge(env["inventory"](api_env={"LOG_LEVEL": "debug"}),
                            "deploys/app.py").changed() == {}


def _keel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "keel"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def test_rolling_update_stops_at_first_unhealthy_host_then_rolls_back(env, harness):
    app1, app2 = env["hosts"]["c-app1"], env["hosts"]["c-app2"]
    old = {h: inspect(env["hosts"][h], "agent", "{{.Config.Image}}") for h in ("c-app1", "c-app2")}
    broken = env["inventory"](api_env={"LOG_LEVEL": "debug"}, agent_build={
        "context": "tests/images/standin", "args": {"VERSION": "2", "BROKEN": "1"}})
    proc = _keel("rollout", str(broken))
    assert proc.returncode == 1, proc.stderr
    assert "rollout stopped at c-app1" in proc.stderr
    assert "not updated: c-app2" in proc.stderr
    # c-app2 was never touched: still the old image, serving.
    assert inspect(app2, "agent", "{{.Config.Image}}") == old["c-app2"]
    assert http_json(app2, 8000, "/health")["ok"]
    assert http_json(app2, 8000, "/info")["version"] == "1"
    # c-app1 runs the broken release (its container may be between restarts).
    assert old["c-app1"] not in ssh(app1, "cat /etc/systemd/system/app-agent.service").stdout

    proc = _keel("rollout", str(broken), "--rollback")
    assert proc.returncode == 0, proc.stderr
    assert inspect(app1, "agent", "{{.Config.Image}}") == old["c-app1"]
    assert http_json(app1, 8000, "/health")["ok"]
    assert inspect(app2, "agent", "{{.Config.Image}}") == old["c-app2"]
    # With the data reverted, hosts and data agree again.
    reverted = env["inventory"](api_env={"LOG_LEVEL": "debug"})
    assert harness.converge(reverted, "deploys/app.py").changed() == {}


def test_status_command(env):
    proc = _keel("status", str(env["inv"]))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["HOST", "SERVICE", "IMAGE", "STATE", "HEALTH", "RESTARTS"]
    rows = {(ln.split()[0], ln.split()[1]): ln.split() for ln in lines[1:]}
    assert len(rows) == 9
    assert rows[("c-app1", "grok")][-1] == "1"  # the kill above
    assert rows[("c-app2", "agent")][2].startswith("localhost/keel/standin:")
    assert all(r[3] == "running" and r[5] == "healthy" for r in rows.values())
