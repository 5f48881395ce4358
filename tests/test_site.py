"""The whole platform on the prod topology, the way `make up` converges it:
inventories/sandbox.py over hosts f-app1, f-app2, f-db1, f-cache1 and f-mon1, with the repo's
own group data (the agent on both app hosts, behind their edge).

Role modules test each role in depth on its own data; this one proves the roles together:
the site plans without an ordering cycle, converges, converges again with zero changes,
plans zero changes, no unit fails, Prometheus scrapes every exporter and the agents (logged
in to the data services: pg_up and redis_up are 1), the data services answer the app hosts
alone, and `keel check` passes through the edge, names each link it breaks, and records runs
through each storage backend (local, s3 on moto's server on a host of its own, postgresql).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import claude_cache
import pytest
import s3_server
from s3_server import BUCKET

from keel import ROOT
from keel.lab.testing import BIN, ssh

pytestmark = pytest.mark.sandbox

PREFIX = "f-"
INVENTORY = ROOT / "inventories" / "sandbox.py"
ENV = {"KEEL_SANDBOX_PREFIX": PREFIX}
AGENTS = ("app1", "app2")
# inventories/sandbox.py's hosts; app hosts nest containers.
LAYOUT = {"app1": True, "app2": True, "db1": False, "cache1": False, "mon1": False}


@pytest.fixture(scope="module")
def s3(sandbox_hosts):
    """moto on a host of its own, set up in the background while the site converges."""
    (host,) = sandbox_hosts(PREFIX + "s3", privileged=False)
    return host, s3_server.start(host)


@pytest.fixture(scope="module")
def site(s3, sandbox_hosts, harness, secrets_env):
    hosts = {}
    for privileged in (True, False):  # each call boots its hosts together
        names = [name for name, nested in LAYOUT.items() if nested == privileged]
        hosts.update(zip(names, sandbox_hosts(*[PREFIX + n for n in names],
                                              privileged=privileged), strict=True))
    for name in AGENTS:
        claude_cache.seed(hosts[name])
    data = harness.workdir / "site_data.py"  # the CLI's tarball from the controller's cache
    data.write_text(f"claude_cli_cache_dir = {claude_cache.HOST_CACHE!r}\n")
    ENV["KEEL_DATA"] = str(data)
    # As `make up` does: the sandbox's CA (the agents' vhosts), and the secrets the data names.
    from keel.core import ca

    ca.ensure("sandbox")  # another module of this worker may have made it
    ensure = subprocess.run([str(BIN / "keel"), "secrets", "ensure", "sandbox", str(INVENTORY)],
                            cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **ENV}, timeout=300)
    assert ensure.returncode == 0, ensure.stderr
    # The whole platform cold (the CLI, the agent's image): longer than one role's converge.
    runs = harness.assert_idempotent(INVENTORY, "deploys/site.py", env=ENV, timeout=2400)
    claude_cache.keep(hosts["app1"])
    return hosts, runs


def test_site_converges_then_nothing_changes(site):
    hosts, (first, second, plan) = site
    assert set(first.changed()) == {PREFIX + name for name in LAYOUT}
    # Every host ran every role of its groups, and nothing failed.
    assert second.changed() == {} and plan.changed() == {}


def test_no_unit_failed_on_any_host(site):
    hosts, _ = site
    for name, host in hosts.items():
        failed = ssh(host, "systemctl list-units --failed --no-legend --plain").stdout
        assert failed.strip() == "", f"{name}: {failed}"


def test_prometheus_scrapes_every_exporter_of_the_site(site):
    hosts, _ = site
    mon = hosts["mon1"]
    url = f"http://{mon.address}:9090/api/v1/targets?state=active"
    expected = {("node", PREFIX + name) for name in LAYOUT} | {
        ("postgres", PREFIX + "db1"), ("redis", PREFIX + "cache1"),
        ("prometheus", PREFIX + "mon1"), ("alertmanager", PREFIX + "mon1")} | {
        ("agent", PREFIX + name) for name in AGENTS}
    deadline, active = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        out = ssh(mon, f"curl -gsf --max-time 3 '{url}'").stdout
        active = json.loads(out)["data"]["activeTargets"] if out else []
        if all(t["health"] == "up" for t in active) and \
                {(t["labels"]["job"], t["labels"]["host"]) for t in active} == expected:
            break
        time.sleep(3)
    assert {(t["labels"]["job"], t["labels"]["host"], t["health"]) for t in active} == \
        {(job, host, "up") for job, host in expected}
    # The exporters log in with the logins group_data/all.py gives the data services.
    query = f"http://{mon.address}:9090/api/v1/query?query=pg_up%20or%20redis_up"
    result = json.loads(ssh(mon, f"curl -gsf --max-time 3 '{query}'").stdout)["data"]["result"]
    assert {(r["metric"]["__name__"], r["metric"]["host"], r["value"][1]) for r in result} == \
        {("pg_up", PREFIX + "db1", "1"), ("redis_up", PREFIX + "cache1", "1")}


def test_app_hosts_reach_the_database_and_others_do_not(site):
    hosts, _ = site
    # pg_hba and the firewall take the app hosts' addresses from the inventory.
    db = hosts["db1"].address
    probe = f"timeout 5 bash -c '</dev/tcp/{db}/5432'"
    assert ssh(hosts["app1"], probe).returncode == 0
    assert ssh(hosts["mon1"], probe).returncode != 0


# --- the platform: the agent behind the edge, checked end to end ----------------------------

def keel_check(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "keel"), "check", "sandbox", *args], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **ENV}, timeout=timeout)


def test_keel_check_passes_through_the_edge(site):
    proc = keel_check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in AGENTS:
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(PREFIX + name))
        for dependency in ("database", "redis", "storage", "cli 2.1"):
            assert dependency in line, line


def test_a_run_is_recorded_in_postgresql_and_the_storage_backend(site):
    """No network to Anthropic here: the run ends as a recorded failure, read back."""
    hosts, _ = site
    proc = keel_check("--run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("recorded (failed") == len(AGENTS), proc.stdout
    rows = ssh(hosts["db1"], "runuser -u postgres -- psql -At app -c "
                             "\"SELECT count(*) FROM agent_runs WHERE status = 'failed' "
                             "AND error IS NOT NULL\"").stdout
    assert int(rows) >= len(AGENTS)
    files = ssh(hosts["app1"], "ls /srv/app/data/transcripts").stdout.split()
    assert files and all(f.endswith(".json") for f in files)


def test_redis_takes_the_agents_user_and_refuses_the_default(site):
    hosts, _ = site
    refused = ssh(hosts["cache1"], "redis-cli -h 127.0.0.1 ping").stdout
    assert "NOAUTH" in refused, refused
    users = ssh(hosts["cache1"], "cat /run/keel/secrets/redis/users.conf").stdout
    assert "user agent reset on" in users and "~agent:*" in users


def test_the_cli_answers_inside_the_container_as_non_root(site):
    hosts, _ = site
    uid = ssh(hosts["app1"], "podman exec agent id -u").stdout.strip()
    version = ssh(hosts["app1"], "podman exec agent /app/claude-headless --version").stdout
    assert uid == "10001" and "(Claude Code)" in version


def test_no_credential_of_the_agent_rests_on_disk(site):
    """DATABASE_URL and REDIS_URL (with passwords) live in tmpfs only: not in the container's
    configuration (podman's container store), not in any unit or file under /etc or /srv."""
    hosts, _ = site
    env = ssh(hosts["app1"], "cat /run/keel/secrets/app/storage.env").stdout
    passwords = [line.split(":", 2)[2].split("@", 1)[0] for line in env.splitlines()
                 if line.startswith(("DATABASE_URL=", "REDIS_URL="))]
    assert len(passwords) == 2 and all(len(p) >= 16 for p in passwords), env.splitlines()[0]
    for password in passwords:
        found = ssh(hosts["app1"], f"grep -rlF -- '{password}' /etc /srv /var/lib/keel "
                                   "/var/lib/containers/storage/overlay-containers 2>/dev/null; "
                                   "podman inspect agent", timeout=300).stdout
        assert password not in found, "a credential rests on disk or in the container config"


def test_the_agent_port_answers_the_edge_alone(site):
    hosts, _ = site
    app1 = hosts["app1"].address
    # The API is on the host's loopback only (the edge's upstream); the metrics port, a
    # published (DNATed) container port, answers Prometheus on mon alone.
    assert ssh(hosts["mon1"], f"timeout 5 bash -c '</dev/tcp/{app1}/8000'").returncode != 0
    assert ssh(hosts["db1"], f"timeout 5 bash -c '</dev/tcp/{app1}/8000'").returncode != 0
    assert ssh(hosts["mon1"], f"timeout 5 bash -c '</dev/tcp/{app1}/9464'").returncode == 0
    assert ssh(hosts["db1"], f"timeout 5 bash -c '</dev/tcp/{app1}/9464'").returncode != 0


def _broken(check_output: str, expected: str) -> None:
    assert expected in check_output, check_output


def test_breaking_one_link_breaks_the_check_naming_it(site):
    hosts, _ = site
    app1, app2 = PREFIX + "app1", PREFIX + "app2"
    # Redis: the agent's password no longer matches (its hash changed on the server).
    users = "/run/keel/secrets/redis/users.conf"
    wrong = "0" * 64
    ssh(hosts["cache1"], f"cp {users} /root/users.conf && sed -i "
                         f"'s/^user agent reset on #[0-9a-f]*/user agent reset on #{wrong}/' "
                         f"{users} && systemctl restart redis-server")
    try:
        proc = keel_check()
        assert proc.returncode == 1
        _broken(proc.stdout, f"{app1}: redis: ")
    finally:
        ssh(hosts["cache1"], f"cp /root/users.conf {users} && systemctl restart redis-server")
    # PostgreSQL stopped.
    ssh(hosts["db1"], "systemctl stop postgresql")
    try:
        proc = keel_check()
        assert proc.returncode == 1
        _broken(proc.stdout, f"{app1}: database: ")
        _broken(proc.stdout, f"{app2}: database: ")
    finally:
        ssh(hosts["db1"], "systemctl start postgresql")
    # The data directory unwritable (local backend).
    ssh(hosts["app1"], "chmod 0500 /srv/app/data")
    try:
        proc = keel_check()
        assert proc.returncode == 1
        _broken(proc.stdout, f"{app1}: storage: PermissionError")
        assert f"{app2}: " not in proc.stdout.replace(f"{app2}: ok", "")
    finally:
        ssh(hosts["app1"], "chmod 0750 /srv/app/data")
    # The edge's upstream down.
    ssh(hosts["app2"], "systemctl stop app-agent")
    try:
        proc = keel_check()
        assert proc.returncode == 1
        _broken(proc.stdout, f"edge → {app2}:8000 refused")
    finally:
        ssh(hosts["app2"], "systemctl start app-agent", timeout=300)
    assert keel_check().returncode == 0




@pytest.mark.parametrize("backend", ["s3", "postgresql"])
def test_runs_through_each_storage_backend(site, s3, harness, backend):
    """Switching the backend re-renders the agent's environment and restarts it; a run's
    transcript is then read back through the new backend."""
    hosts, _ = site
    extra = harness.workdir / f"site_{backend}.py"
    lines = [f"claude_cli_cache_dir = {claude_cache.HOST_CACHE!r}",
             f"storage_backend = {backend!r}"]
    if backend == "s3":
        s3_host, setup = s3
        assert setup.result().returncode == 0, setup.result().stderr
        lines += [f"storage_s3_bucket = {BUCKET!r}",
                  f"storage_s3_endpoint = 'http://{s3_host.address}:5000'"]
    extra.write_text("\n".join(lines) + "\n")
    env = {**ENV, "KEEL_DATA": extra.as_posix()}
    ensure = subprocess.run([str(BIN / "keel"), "secrets", "ensure", "sandbox", str(INVENTORY)],
                            cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **env}, timeout=300)
    assert ensure.returncode == 0, ensure.stderr
    run = harness.run(INVENTORY, "deploys/site.py", env=env)
    assert run.returncode == 0, run.output
    proc = subprocess.run([str(BIN / "keel"), "check", "sandbox", "--run"], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("recorded (failed") == len(AGENTS), proc.stdout
    env_file = ssh(hosts["app1"], "cat /run/keel/secrets/app/storage.env").stdout
    assert f"STORAGE_BACKEND={backend}" in env_file
