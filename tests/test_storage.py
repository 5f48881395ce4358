"""storage on real hosts, with a real app reading its environment: local, s3 (moto's server on
the db host) and postgresql (keel's postgres role) backends and the live check; switching
backends re-renders the environment and restarts only the app service that reads it; bad data.
Also claude_cli's side of the app (DEFAULT_MODEL & co. in the container) and a headless call
without network, which fails in the CLI itself.

k-app1 (privileged: containers) runs storage, claude_cli, container_runtime and app: service
`agent` lists storage's and claude_cli's env-files, `worker` lists none. k-db1 runs postgres,
redis and moto. The tests run in file order and share the hosts.
"""

import hashlib
import json
import re
import secrets as random

import claude_cache
import pytest
import s3_server
from s3_server import BUCKET

from keel import ROOT
from keel.lab.sandbox import Host
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/storage_app.py"
QUICK = {"KEEL_TEST_BASE": "0"}  # base and secrets already converged on the hosts
ENV = "/run/keel/secrets/app/storage.env"
CLAUDE_ENV = "/etc/keel/app/claude-cli.env"
HEALTH = {"test": ["python3", "/app/standin.py", "health"], "interval": "2s", "timeout": "5s",
          "retries": 3, "start_period": "10s"}
DATA = {
    "claude_cli_auth": "none", "claude_cli_model": "haiku",
    "claude_cli_allowed_tools": ["Read", "Grep"], "claude_cli_cache_dir": claude_cache.HOST_CACHE,
    "app_services": {
        "agent": {"build": {"context": "tests/images/standin"}, "env_files": [ENV, CLAUDE_ENV],
                  "environment": {"STANDIN_PORT": "8000"}, "networks": ["agent"],
                  "health": HEALTH},
        "worker": {"build": {"context": "tests/images/standin"},
                   "environment": {"STANDIN_PORT": "8001"}, "networks": ["agent"],
                   "health": HEALTH},
    },
    "app_networks": {"agent": {}},
    "postgres_roles": [{"name": "app", "password_secret": "postgres_app_password"}],
    "postgres_databases": [{"name": "app", "owner": "app"}],
}
# Units whose restarts the switches watch: (host index, unit).
WATCHED = [(0, "app-agent"), (0, "app-worker"), (1, "postgresql@15-main"),
           (1, "redis-server")]


def canary() -> str:
    return "keel-canary-" + random.token_hex(12)


@pytest.fixture(scope="module")
def values(secrets_env):
    values = {"storage_s3_access_key_id": "AKIA" + random.token_hex(8).upper(),
              "storage_s3_secret_access_key": canary(), "postgres_app_password": canary(),
              # The db host's exporters.
              "postgres_monitor_password": canary(), "redis_exporter_password": canary(),
              "postgres_backup_cipher_pass": canary()}
    for name, value in values.items():
        secrets_env.set(name, value)
    return values


@pytest.fixture(scope="module")
def hosts(sandbox_hosts):
    (app,) = sandbox_hosts("k-app1", privileged=True)
    (db,) = sandbox_hosts("k-db1")
    return app, db


def inventory(harness, hosts, name, **data):
    app, db = hosts
    return harness.inventory({"app": [app], "db": [db], "cache": [db]},
                             data={**DATA, **data}, name=name)


def invocations(hosts) -> dict[str, str]:
    return {unit: ssh(hosts[i], f"systemctl show -p InvocationID --value {unit}").stdout.strip()
            for i, unit in WATCHED}


def in_agent(app, command: str) -> str:
    out = ssh(app, f"podman exec agent sh -c '{command}'")
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def local(harness, hosts, values):
    """Converged with the local backend: k-app1 first while k-db1 sets up moto, then both."""
    app, db = hosts
    moto = s3_server.start(db)
    claude_cache.seed(app)
    inv = inventory(harness, hosts, "local")
    first = harness.converge(inv, DEPLOY, args=["--limit", "k-app1"])
    setup = moto.result()
    assert setup.returncode == 0, setup.stdout + setup.stderr
    claude_cache.keep(app)
    runs = harness.assert_idempotent(inv, DEPLOY)
    return first, *runs


def test_local_converges_then_no_changes(local):
    first, db_first, second, plan = local
    assert "k-app1" in first.changed() and set(db_first.changed()) == {"k-db1"}
    assert second.changed() == {} and plan.changed() == {}


def test_local_backend_tree_owner_and_modes(local, hosts):
    app, _ = hosts
    out = ssh(app, "cd /srv/app/data && stat -c '%n %U %G %a' . db credentials config "
                   "config/agents config/skills").stdout.splitlines()
    assert out == [". app app 750", "db app app 750", "credentials app app 700",
                   "config app app 750", "config/agents app app 750",
                   "config/skills app app 750"]
    env = ssh(app, f"cat {ENV}").stdout
    assert "STORAGE_BACKEND=local\nDATA_DIR=/srv/app/data\n" in env
    assert "DATABASE_URL=sqlite+aiosqlite:////srv/app/data/db/machine.db" in env
    assert ssh(app, f"stat -c '%U %a' {ENV}").stdout.strip() == "app 400"
    assert ssh(app, "ls -A /srv/app/data/db").stdout == ""  # the probe cleaned up


def test_testinfra_checks(local, hosts):
    result = run_testinfra([hosts[0]], ROOT / "roles/storage/tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_app_receives_storage_and_claude_settings(local, hosts):
    app, db = hosts
    got = in_agent(app, "printenv STORAGE_BACKEND REDIS_URL DEFAULT_MODEL DEFAULT_ALLOWED_TOOLS "
                        "ENABLE_SUBAGENTS CLAUDE_HEADLESS")
    assert got.splitlines() == ["local", f"redis://{db.address}:6379/0", "haiku", "Read,Grep",
                                "true", "/usr/local/bin/claude-headless"]
    # The unit waits for keel-secrets (the env-file is on its tmpfs) and names both files.
    unit = ssh(app, "systemctl cat app-agent").stdout
    assert re.search(r"^After=.*keel-secrets\.service", unit, re.M)
    assert f"--env-file {ENV} --env-file {CLAUDE_ENV}" in unit
    worker = ssh(app, "podman exec worker printenv STORAGE_BACKEND").returncode
    assert worker == 1, "the worker reads the storage environment"


def test_headless_call_without_network_fails_in_the_cli(local, hosts):
    """The wiring: the wrapper (run by root) reaches the CLI as claude, in a network namespace
    with no network at all, and the CLI answers with its own error (no credential here)."""
    app, _ = hosts
    out = ssh(app, "cd /tmp && timeout 60 unshare -n claude-headless -- 'Say hi'; echo rc=$?",
              timeout=90)
    result = json.loads(out.stdout.splitlines()[0])
    assert result["type"] == "result" and result["is_error"] is True, out.stdout
    assert "Not logged in" in result["result"], result["result"]
    assert out.stdout.splitlines()[-1] == "rc=1", out.stdout + out.stderr


def switch(harness, hosts, name, again=True, **data):
    """Converge both hosts on another backend (and again: no change): only app-agent restarts."""
    before = invocations(hosts)
    inv = inventory(harness, hosts, name, **data)
    first = harness.converge(inv, DEPLOY, env=QUICK)
    if again:
        second = harness.converge(inv, DEPLOY, env=QUICK)
        assert second.changed() == {}, f"second run changed: {second.changed()}"
    after = invocations(hosts)
    restarted = {unit for unit in before if before[unit] != after[unit]}
    assert restarted == {"app-agent"}, f"restarted: {restarted}"
    assert first.changed().keys() == {"k-app1"}, first.changed()
    return inv, first


@pytest.fixture(scope="module")
def s3(local, harness, hosts):
    _, db = hosts
    # Its second run is left out for time: the postgresql switch runs one.
    return switch(harness, hosts, "s3", again=False, storage_backend="s3",
                  storage_s3_bucket=BUCKET,
                  storage_s3_prefix="agents/test",
                  storage_s3_endpoint=f"http://{db.address}:5000")


def test_s3_backend_env_and_live_check(s3, hosts, values):
    app, db = hosts
    _, first = s3
    env = ssh(app, f"cat {ENV}").stdout
    assert "STORAGE_BACKEND=s3\n" in env and f"S3_BUCKET={BUCKET}\n" in env
    assert f"S3_ENDPOINT_URL=http://{db.address}:5000\n" in env
    assert f"AWS_SECRET_ACCESS_KEY={values['storage_s3_secret_access_key']}\n" in env
    assert set(first.changed()["k-app1"]) == {
        "storage | Install the s3 client",
        "storage | Deliver the app's storage environment (s3)",
        "storage | Restart the services that read the storage environment"}
    assert in_agent(app, "printenv STORAGE_BACKEND S3_BUCKET").split() == ["s3", BUCKET]
    # The check really wrote, read and deleted its probe object on the server.
    log = re.sub(r"\x1b\[[0-9;]*m", "", ssh(db, "journalctl -u keel-moto -o cat").stdout)
    for verb in ("PUT", "GET", "DELETE"):
        assert f"{verb} /{BUCKET}/agents/test/.keel-probe-k-app1-" in log, verb
    for value in values.values():
        assert value not in first.output


def test_s3_failure_names_backend_and_endpoint(s3, harness, hosts):
    _, db = hosts
    inv = inventory(harness, hosts, "s3_missing", storage_backend="s3",
                    storage_s3_bucket="keel-no-such-bucket",
                    storage_s3_endpoint=f"http://{db.address}:5000")
    run = harness.run(inv, DEPLOY, args=["--limit", "k-app1"], env=QUICK, as_json=False)
    assert run.returncode != 0
    assert (f"storage check failed: backend s3 at http://{db.address}:5000, bucket "
            "keel-no-such-bucket is not reachable and writable: NoSuchBucket") in run.output


@pytest.fixture(scope="module")
def postgresql(s3, harness, hosts):
    # After the failed run above: the s3 file of the bucket that does not exist is in place.
    return switch(harness, hosts, "postgresql", storage_backend="postgresql")


def test_postgresql_backend_from_db_group_and_secret(postgresql, hosts, values):
    app, db = hosts
    env = ssh(app, f"cat {ENV}").stdout
    url = (f"postgresql+asyncpg://app:{values['postgres_app_password']}"
           f"@{db.address}:5432/app")
    assert "STORAGE_BACKEND=postgresql\n" in env and f"DATABASE_URL={url}\n" in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    # The restarted app has the new URL (compared by digest: it holds the password).
    digest = in_agent(app, "printenv DATABASE_URL | tr -d \"\\n\" | sha256sum").split()[0]
    assert digest == hashlib.sha256(url.encode()).hexdigest()
    # Nothing of the probe stays in the app's database.
    tables = ssh(db, "cd / && runuser -u postgres -- psql -At -d app -c '\\dt'").stdout
    assert "keel_storage_probe" not in tables
    _, first = postgresql
    assert values["postgres_app_password"] not in first.output


NOWHERE = Host("k-bad1", "198.51.100.251", False, "running")
BAD = {
    "s3 without a bucket": ({"storage_backend": "s3"}, "storage_s3_bucket",
                            "required when storage_backend is 's3'"),
    "relative data dir": ({"storage_data_dir": "srv/data"}, "storage_data_dir",
                          "expected an absolute path"),
    "unknown backend": ({"storage_backend": "nfs"}, "storage_backend",
                        "'local', 's3' or 'postgresql'"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_data_fails_before_connecting(harness, case):
    data, key, expected = BAD[case]
    inv = harness.inventory({"app": [NOWHERE]}, data={"claude_cli_auth": "none", **data},
                            name=case.replace(" ", "_"))
    run = harness.run(inv, "deploys/site.py")
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    line = next((ln for ln in run.stderr.splitlines() if f"k-bad1: {key} " in ln), None)
    assert line and expected in line, run.stderr
