"""Containers on podman: the three reference stacks on real (privileged) sandbox hosts.

c-app1 runs the web stack, the multi-agent pod and the agent; c-app2 runs the agent and
the edge that serves both agents over HTTPS. One converge of tests/deploys/containers.py
(base, secrets, container_runtime, app, edge), its idempotence re-run and plan; then
behaviour: health, start order, network isolation, limits, restarts, secrets, a change that
recreates one service, and releases through the edge (keel rollout: drain, gate, automatic
rollback) under a steady stream of requests. The tests run in file order and share the hosts.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest
from containers_data import secret_values, stack

from keel import ROOT
from keel.cli import rollout
from keel.core import ca
from keel.lab.testing import BIN, run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/containers.py"
WEB = ["db", "cms", "api", "frontend"]
POD = ["claude", "grok", "gemini"]
SERVER_NAME, SOLO = "agent.sandbox.internal", "solo.sandbox.internal"
# c-app2's edge in front of the agent on both hosts, and (solo) in front of its own agent
# only, over loopback: a release drains a host from the first and surges on the second. It
# gates each host on /health.
RELEASE = {"drain_timeout": 10, "smoke": {"path": "/health"},
           "canary": {"hold": 10, "max_5xx_rate": 0.05}}
EDGE = {"edge_upstreams": {"agent": {"group": "app", "port": 8000, **RELEASE},
                           "solo": {"group": "app", "port": 8000, "via": "loopback",
                                    **RELEASE}},
        "edge_vhosts": [{"name": "agent", "server_name": SERVER_NAME, "upstream": "agent"},
                        {"name": "solo", "server_name": SOLO, "upstream": "solo"}]}


# cms and api mount a rendered config, the frontend a shipped one.
SITE_CONF, STATIC_CONF = "/etc/keel-test/site.conf", "/etc/keel-test/static.conf"


def configs(greeting: str) -> dict:
    return {"app_configs": {
        "site": {"template": "tests/templates/app-config.conf.j2",
                 "vars": {"greeting": greeting, "workers": 2}},
        "static": {"file": "tests/templates/app-static.conf"}}}


def host_stacks(agent_build: dict | None = None, api_env: dict | None = None,
                greeting: str = "hello") -> dict:
    full, agent = stack("web_stack", "multi_agent", "agent"), stack("agent")
    full.update(configs(greeting))
    for name in ("cms", "api"):
        full["app_services"][name]["configs"] = [{"config": "site", "target": SITE_CONF}]
    full["app_services"]["frontend"]["configs"] = [{"config": "static", "target": STATIC_CONF}]
    for data in (full, agent):
        data["app_services"]["agent"]["ports"][0]["surge"] = 8001
        if agent_build:
            data["app_services"]["agent"]["build"] = agent_build
        if api_env and "api" in data["app_services"]:
            data["app_services"]["api"]["environment"].update(api_env)
    return {"c-app1": full, "c-app2": {**agent, **EDGE}}


@pytest.fixture(scope="module")
def env(sandbox_hosts, harness, secrets_env):
    values = secret_values(host_stacks()["c-app1"])
    for name, value in values.items():
        secrets_env.set(name, value)
    ca.ensure("sandbox")
    hosts = sandbox_hosts("c-app1", "c-app2", privileged=True)

    def inventory(**changes):
        return harness.inventory({"app": hosts, "edge": hosts[1:]},
                                 host_data=host_stacks(**changes))

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


def test_configs_are_read_only_files_of_their_users(env):
    app1 = env["hosts"]["c-app1"]
    mounts = {"cms": ("site", SITE_CONF), "api": ("site", SITE_CONF),
              "frontend": ("static", STATIC_CONF)}
    for name, (config, path) in mounts.items():
        (mount,) = [m for m in json.loads(inspect(app1, name, "{{json .Mounts}}"))
                    if m["Destination"] == path]
        # The service's own copy, named by its content: owned by its user, not world-readable.
        on_host = mount["Source"]
        assert on_host.startswith(f"/etc/keel/app/configs/{name}/{config}-"), on_host
        assert ssh(app1, f"stat -c '%u:%g %a' {on_host}").stdout.strip() == "10001:10001 440"
        inside = podman(app1, f"exec {name} cat {path}")
        assert inside == ssh(app1, f"cat {on_host}").stdout.strip()
        # A read-only bind mount: even root with every capability cannot write it.
        assert mount["RW"] is False, mount
        write = ssh(app1, f"podman exec --privileged --user 0 {name} sh -c 'echo x >> {path}'")
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write
    assert "greeting = hello" in podman(app1, f"exec api cat {SITE_CONF}")
    assert ssh(app1, f"podman exec db test -e {SITE_CONF}").returncode != 0


def test_env_change_recreates_only_that_service(env, harness):
    app1 = env["hosts"]["c-app1"]
    ids = {s: inspect(app1, s, "{{.Id}}") for s in WEB + POD}
    inv = env["inventory"](api_env={"LOG_LEVEL": "debug"})
    run = harness.converge(inv, "deploys/app.py")
    changed = run.changed()
    assert set(changed) == {"c-app1"}
    others = [op for op in changed["c-app1"] if "api" not in op and "Reload" not in op
              and "replaces" not in op and "Record the release" not in op]
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


class Stream:
    """A steady, bounded stream of HTTPS requests through the edge (GET /info, one connection
    each, the certificate checked against the sandbox CA), counting failures."""

    def __init__(self, edge, name: str = SERVER_NAME, limit: int = 6000, seconds: int = 900):
        self.edge, self.name, self.limit, self.seconds = edge, name, limit, seconds
        self.ctx = ssl.create_default_context(cadata=ca.cert("sandbox"))
        self.count, self.failures, self.versions = 0, [], set()
        self.outcomes: list[tuple[float, bool]] = []  # (monotonic time, succeeded)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _get(self) -> dict:
        sock = socket.create_connection((self.edge.address, 443), timeout=10)
        conn = http.client.HTTPSConnection(self.name, 443, timeout=10)
        conn.sock = self.ctx.wrap_socket(sock, server_hostname=self.name)
        try:
            conn.request("GET", "/info")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise OSError(f"HTTP {response.status}: {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def _run(self) -> None:
        end = time.monotonic() + self.seconds
        while not self._stop.is_set() and self.count < self.limit and time.monotonic() < end:
            self.count += 1
            try:
                self.versions.add(self._get()["version"])
                self.outcomes.append((time.monotonic(), True))
            except (OSError, ValueError) as exc:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {exc}")
                self.outcomes.append((time.monotonic(), False))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def _release(env, *args: str, **changes) -> tuple[subprocess.CompletedProcess, Stream, Stream]:
    """A release under two streams: through the agent vhost (both hosts) and solo (c-app2)."""
    edge = env["hosts"]["c-app2"]
    with Stream(edge) as stream, Stream(edge, SOLO) as solo:
        time.sleep(1)
        proc = _keel("rollout", str(env["inventory"](api_env={"LOG_LEVEL": "debug"}, **changes)),
                     *args)
        time.sleep(1)
    return proc, stream, solo


def _version(host) -> str:
    return http_json(host, 8000, "/info")["version"]


def _nothing_drained(edge) -> bool:
    """No server is down, weighted or switched: the live config is the staged one."""
    return ssh(edge, "diff -r /etc/nginx/keel/staged /etc/nginx/keel/live").returncode == 0


def test_release_through_the_edge_loses_no_request(env):
    app1, app2 = env["hosts"]["c-app1"], env["hosts"]["c-app2"]
    proc, stream, solo = _release(env, agent_build={"context": "tests/images/standin",
                                                    "args": {"VERSION": "2"}})
    assert proc.returncode == 0, proc.stderr
    assert "c-app2: drained agent:c-app1" in proc.stderr
    assert "c-app2: drained agent:c-app2" in proc.stderr
    assert "batch 2/2 took out of service " in proc.stderr
    assert stream.failures == [] and stream.count > 20, (stream.count, stream.failures[:5])
    assert stream.versions == {"1", "2"}
    assert _version(app1) == _version(app2) == "2"
    assert _nothing_drained(app2)
    # solo: c-app2 is its only server, so the new release started beside the old one on the
    # surge port, took the traffic, and handed it back once app-agent ran it.
    assert "c-app2: solo:c-app2:8001" in proc.stderr and "c-app2: solo:c-app2:8000" in proc.stderr
    assert solo.failures == [] and solo.count > 20, (solo.count, solo.failures[:5])
    assert solo.versions == {"1", "2"}
    assert podman(app2, "ps -a --format '{{.Names}}'").split() == ["agent"]
    assert ssh(app2, "ls /run/systemd/system/app-agent-surge.service").returncode != 0


def test_rollback_by_hand_through_the_edge(env):
    """keel rollout --rollback: the same drain and gate, back to the definitions replaced."""
    app1, app2 = env["hosts"]["c-app1"], env["hosts"]["c-app2"]
    proc, stream, _ = _release(env, "--rollback", agent_build={"context": "tests/images/standin",
                                                            "args": {"VERSION": "2"}})
    assert proc.returncode == 0, proc.stderr
    assert stream.failures == [] and stream.count > 20, (stream.count, stream.failures[:5])
    assert _version(app1) == _version(app2) == "1"
    assert _nothing_drained(app2)


def test_broken_release_rolls_back_on_its_own(env, harness):
    app1, app2 = env["hosts"]["c-app1"], env["hosts"]["c-app2"]
    before = {h: inspect(env["hosts"][h], "agent", "{{.Config.Image}} {{.Id}}")
              for h in ("c-app1", "c-app2")}
    proc, stream, solo = _release(env, agent_build={"context": "tests/images/standin",
                                                    "args": {"VERSION": "3", "BROKEN": "1"}})
    assert proc.returncode == 1, proc.stderr
    assert "rollout stopped at c-app1" in proc.stderr
    assert "c-app1: health: agent" in proc.stderr
    assert "c-app1: rolled back to its previous release, back in service" in proc.stderr
    assert "--rollback" not in proc.stderr.splitlines()[-1]
    # c-app2 was never touched: the same container, serving.
    assert inspect(app2, "agent", "{{.Config.Image}} {{.Id}}") == before["c-app2"]
    assert _version(app2) == "1"
    # c-app1 is back on its previous release, healthy and in service; no request was lost.
    assert inspect(app1, "agent", "{{.Config.Image}}") == before["c-app1"].split()[0]
    assert http_json(app1, 8000, "/health")["ok"]
    assert _nothing_drained(app2)
    assert stream.failures == [] and stream.count > 20, (stream.count, stream.failures[:5])
    assert stream.versions == {"1"}
    assert solo.failures == [] and solo.versions == {"1"}
    # With the data reverted, hosts and data agree again (the edge too).
    reverted = env["inventory"](api_env={"LOG_LEVEL": "debug"})
    assert harness.converge(reverted, DEPLOY).changed() == {}


def test_status_command(env):
    proc = _keel("status", str(env["inv"]))
    assert proc.returncode == 0, proc.stderr
    services, releases = proc.stdout.split("\n\n")
    lines = services.splitlines()
    assert lines[0].split() == ["HOST", "SERVICE", "IMAGE", "STATE", "HEALTH", "RESTARTS"]
    rows = {(ln.split()[0], ln.split()[1]): ln.split() for ln in lines[1:]}
    assert len(rows) == 9
    assert rows[("c-app1", "grok")][-1] == "1"  # the kill above
    assert rows[("c-app2", "agent")][2].startswith("localhost/keel/standin:")
    assert all(r[3] == "running" and r[5] == "healthy" for r in rows.values())
    assert releases.splitlines()[0].split() == ["HOST", "RELEASE", "CONFIG", "RECORDED", "IMAGES"]
    assert [ln.split()[:2] for ln in releases.splitlines()[1:]] == [
        ["c-app1", "current"], ["c-app1", "previous"], ["c-app2", "current"],
        ["c-app2", "previous"]]


def test_release_records(env):
    """Each host records the release it runs (config hash, image ids) and the one before: the
    releases above ended on version 1 (rolled back by hand; the broken one never became
    current), after version 2."""
    records = rollout.releases(env["inv"])
    for name, host in env["hosts"].items():
        current, previous = records[name]["current"], records[name]["previous"]
        assert current["config"] != previous["config"]
        image, image_id = current["images"]["agent"].split()
        assert image == inspect(host, "agent", "{{.Config.Image}}")
        assert image_id == podman(host, f"image inspect --format '{{{{.Id}}}}' {image}")
        assert previous["images"]["agent"].split()[0] != image
        assert _version(host) == "1"


def _invocations(host, names: list[str]) -> dict[str, str]:
    return {name: ssh(host, f"systemctl show -P InvocationID app-{name}").stdout.strip()
            for name in names}


def test_config_change_recreates_only_its_users(env, harness):
    """site's users (cms, api) are recreated with the new content; db, frontend and the pod
    keep their containers and units. Back to the first content: the same again. (After the
    records' test: its releases would be that test's current and previous; before the
    release tests, which leave the agent on another version.)"""
    app1 = env["hosts"]["c-app1"]
    for greeting, previous in (("bonjour", "hello"), ("hello", "bonjour")):
        ids = {s: inspect(app1, s, "{{.Id}}") for s in WEB + POD}
        units = _invocations(app1, WEB + POD)
        run = harness.converge(env["inventory"](api_env={"LOG_LEVEL": "debug"}, greeting=greeting),
                               "deploys/app.py")
        changed = run.changed()
        assert set(changed) == {"c-app1"}
        others = [op for op in changed["c-app1"] if not any(s in op for s in ("cms", "api"))
                  and "Reload" not in op and "replaces" not in op
                  and "Record the release" not in op]
        assert others == [], changed
        after = {s: inspect(app1, s, "{{.Id}}") for s in WEB + POD}
        assert sorted(s for s in ids if ids[s] != after[s]) == ["api", "cms"]
        moved = _invocations(app1, WEB + POD)
        assert sorted(s for s in units if units[s] != moved[s]) == ["api", "cms"]
        for name in ("cms", "api"):
            text = podman(app1, f"exec {name} cat {SITE_CONF}")
            assert f"greeting = {greeting}" in text and previous not in text
    reverted = env["inventory"](api_env={"LOG_LEVEL": "debug"})
    assert harness.converge(reverted, "deploys/app.py").changed() == {}
    # Each user keeps two copies: its definition's and the replaced one's (for a rollback).
    for name in ("cms", "api"):
        assert len(ssh(app1, f"ls /etc/keel/app/configs/{name}").stdout.split()) == 2


def test_canary_returning_5xx_is_rolled_back(env):
    """keel rollout --canary 25%: c-app1 takes a quarter of the agent upstream's requests (nginx
    weights 1:3) for the hold time; its release answers /info with 500, so its 5xx rate
    passes max_5xx_rate and it is rolled back; c-app2 is never touched."""
    app1, app2 = env["hosts"]["c-app1"], env["hosts"]["c-app2"]
    before = inspect(app2, "agent", "{{.Config.Image}} {{.Id}}")
    proc, stream, solo = _release(env, "--canary", "25%", agent_build={
        "context": "tests/images/standin", "args": {"VERSION": "5", "ERRORS": "1"}})
    assert proc.returncode == 1, proc.stderr
    assert "c-app2: weights agent:c-app1:1, agent:c-app2:3" in proc.stderr
    assert "c-app1: canary 5xx rate through c-app2's upstream agent is over max_5xx_rate " \
           "5.0%: [c-app2] keel-edge: agent:c-app1 answered " in proc.stderr, proc.stderr
    assert "c-app1: rolled back to its previous release, back in service" in proc.stderr
    assert "rollout stopped at c-app1" in proc.stderr
    assert inspect(app2, "agent", "{{.Config.Image}} {{.Id}}") == before
    assert _version(app1) == _version(app2) == "1"
    assert _nothing_drained(app2)
    # The failures are the canary's share of the requests, within its hold time (10 s).
    failed = [t for t, ok in stream.outcomes if not ok]
    assert failed and all("HTTP 500" in f for f in stream.failures), stream.failures[:5]
    assert failed[-1] - failed[0] <= 10 + 5, stream.failures
    held = [ok for t, ok in stream.outcomes if failed[0] <= t <= failed[0] + 10]
    assert len(failed) <= 0.25 * len(held) + 3, (len(failed), len(held), stream.failures[:5])
    assert solo.failures == [] and solo.versions == {"1"}


def test_killed_release_is_repaired_by_a_rerun(env):
    """kill -9 of keel rollout (and the pyinfra it runs) while c-app1 is drained for its
    release: c-app1 stays drained; a re-run finds it so, gates it and puts it back in
    service, then releases both hosts (a 50% canary first, promoted). No request fails."""
    app2 = env["hosts"]["c-app2"]
    release = {"agent_build": {"context": "tests/images/standin", "args": {"VERSION": "4"}}}
    inv = str(env["inventory"](api_env={"LOG_LEVEL": "debug"}, **release))
    with Stream(app2) as stream, Stream(app2, SOLO) as solo:
        run = subprocess.Popen([str(BIN / "keel"), "rollout", inv, "--canary", "50%"],
                               cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)
        for line in run.stderr:
            if "c-app2: drained agent:c-app1" in line:
                break
        time.sleep(3)  # the deploy is under way
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        left = ssh(app2, "/usr/local/sbin/keel-edge servers").stdout
        assert "agent c-app1 " in left and " down" in left.split("agent c-app1 ")[1], left
        proc = _keel("rollout", inv, "--canary", "50%")
        time.sleep(1)
    assert proc.returncode == 0, proc.stderr
    assert "c-app2: agent:c-app1 left down by an earlier run" in proc.stderr
    assert "canary c-app1: within its thresholds for 10 s, promoted" in proc.stderr
    assert _version(env["hosts"]["c-app1"]) == _version(app2) == "4"
    assert _nothing_drained(app2)
    assert stream.failures == [] and stream.count > 20, (stream.count, stream.failures[:5])
    assert solo.failures == [] and solo.count > 20, (solo.count, solo.failures[:5])
