"""storage on real hosts: local, s3 (moto's server) and postgresql backends, the live check,
switching backends (re-renders the environment, restarts only its consumer), bad data."""

import re
import secrets as random
import subprocess
import threading

import pytest

from keel.sandbox import Host
from keel.testing import ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/storage_consumers.py"
QUICK = {"KEEL_TEST_BASE": "0"}  # base and secrets already converged on the host
ENV = "/run/keel/secrets/app/storage.env"
BUCKET = "keel-agent"

# The test's PostgreSQL and moto server (the postgres role is not in main yet).
BACKENDS_SETUP = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-venv postgresql >/dev/null
python3 -m venv /opt/moto
# pip needs the CA bundle the sandbox image carries (a trait of this test machine).
PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/moto/bin/pip install -q 'moto[server]'
systemd-run --unit=keel-moto /opt/moto/bin/moto_server -H 0.0.0.0 -p 5000
PG=/etc/postgresql/15/main
echo "listen_addresses = '*'" >> $PG/postgresql.conf
echo "host all all 198.51.100.0/24 scram-sha-256" >> $PG/pg_hba.conf
systemctl restart postgresql
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE ROLE app LOGIN PASSWORD '{password}';
CREATE DATABASE app OWNER app;
SQL
/opt/moto/bin/python - <<'PY'
import time, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:5000", region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="x")
for _ in range(100):
    try:
        s3.create_bucket(Bucket="{bucket}")
        break
    except Exception:
        time.sleep(0.2)
PY
"""


def canary() -> str:
    return "keel-canary-" + random.token_hex(12)


@pytest.fixture(scope="module")
def values(secrets_env):
    values = {"storage_s3_access_key_id": "AKIA" + random.token_hex(8).upper(),
              "storage_s3_secret_access_key": canary(), "postgres_app_password": canary(),
              "postgres_monitor_password": canary()}  # the db host's exporter
    for name, value in values.items():
        secrets_env.set(name, value)
    return values


@pytest.fixture(scope="module")
def hosts(sandbox_hosts):
    return sandbox_hosts("k-app1", "k-s3")


@pytest.fixture(scope="module")
def backends(hosts, values):
    """Sets the backends up on k-s3 in the background, while k-app1 converges."""
    _, server = hosts
    script = BACKENDS_SETUP.replace("{password}", values["postgres_app_password"]) \
        .replace("{bucket}", BUCKET)
    result = {}

    def run():
        # From a file: apt's maintainer scripts would eat a script fed on stdin.
        subprocess.run(server.ssh_argv("cat > /root/keel-backends.sh"), input=script,
                       text=True, check=True, timeout=60)
        result["proc"] = subprocess.run(server.ssh_argv("sh /root/keel-backends.sh"),
                                        stdin=subprocess.DEVNULL, text=True,
                                        capture_output=True, timeout=900)

    thread = threading.Thread(target=run)
    thread.start()

    def ready():
        thread.join()
        proc = result["proc"]
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return server

    return ready


def inventory(harness, hosts, name, **data):
    app, server = hosts
    base = {"storage_consumers": ["keel-test-app"], "claude_cli_auth": "none"}
    return harness.inventory({"app": [app], "db": [server]}, data={**base, **data}, name=name)


def converge_twice(harness, inv, env=None):
    """Converge app (k-app1 only), then again: the second run changes nothing."""
    first = harness.converge(inv, DEPLOY, args=["--limit", "k-app1"], env=env)
    second = harness.converge(inv, DEPLOY, args=["--limit", "k-app1"], env=env)
    assert second.changed() == {}, f"second run changed: {second.changed()}"
    return first


def pid(host, unit):
    return ssh(host, f"systemctl show -p MainPID --value {unit}").stdout.strip()


@pytest.fixture(scope="module")
def local(harness, hosts, backends, values):
    inv = inventory(harness, hosts, "local")
    first = converge_twice(harness, inv)
    plan = harness.run(inv, DEPLOY, dry=True, diff=True, args=["--limit", "k-app1"]).check()
    assert plan.changed() == {}, plan.changed()
    return first


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


def switch(harness, hosts, name, **data):
    app, _ = hosts
    before = {u: pid(app, u) for u in ("keel-test-app", "keel-test-other")}
    inv = inventory(harness, hosts, name, **data)
    first = converge_twice(harness, inv, env=QUICK)
    after = {u: pid(app, u) for u in before}
    assert after["keel-test-app"] != before["keel-test-app"], "consumer not restarted"
    assert after["keel-test-other"] == before["keel-test-other"], "non-consumer restarted"
    return inv, first


@pytest.fixture(scope="module")
def s3(local, harness, hosts, backends, values):
    server = backends()
    return switch(harness, hosts, "s3", storage_backend="s3", storage_s3_bucket=BUCKET,
                  storage_s3_prefix="agents/test",
                  storage_s3_endpoint=f"http://{server.address}:5000")


def test_s3_backend_env_and_live_check(s3, hosts, values):
    app, server = hosts
    _, first = s3
    env = ssh(app, f"cat {ENV}").stdout
    assert "STORAGE_BACKEND=s3\n" in env and f"S3_BUCKET={BUCKET}\n" in env
    assert f"S3_ENDPOINT_URL=http://{server.address}:5000\n" in env
    assert f"AWS_SECRET_ACCESS_KEY={values['storage_s3_secret_access_key']}\n" in env
    assert "storage | Restart keel-test-app for the new storage environment" \
        in first.changed()["k-app1"]
    # The check really wrote, read and deleted its probe object on the server.
    log = re.sub(r"\x1b\[[0-9;]*m", "", ssh(server, "journalctl -u keel-moto -o cat").stdout)
    for verb in ("PUT", "GET", "DELETE"):
        assert f"{verb} /{BUCKET}/agents/test/.keel-probe-k-app1-" in log, verb
    for value in values.values():
        assert value not in first.output


def test_s3_failure_names_backend_and_endpoint(s3, harness, hosts):
    _, server = hosts
    inv = inventory(harness, hosts, "s3_missing", storage_backend="s3",
                    storage_s3_bucket="keel-no-such-bucket",
                    storage_s3_endpoint=f"http://{server.address}:5000")
    run = harness.run(inv, DEPLOY, args=["--limit", "k-app1"], env=QUICK, as_json=False)
    assert run.returncode != 0
    assert (f"storage check failed: backend s3 at http://{server.address}:5000, bucket "
            "keel-no-such-bucket is not reachable and writable: NoSuchBucket") in run.output


@pytest.fixture(scope="module")
def postgresql(s3, harness, hosts, backends):
    return switch(harness, hosts, "postgresql", storage_backend="postgresql")


def test_postgresql_backend_from_db_group_and_secret(postgresql, hosts, values):
    app, server = hosts
    env = ssh(app, f"cat {ENV}").stdout
    assert "STORAGE_BACKEND=postgresql\n" in env
    assert (f"DATABASE_URL=postgresql+asyncpg://app:{values['postgres_app_password']}"
            f"@{server.address}:5432/app\n") in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    # Nothing of the probe stays in the app's database.
    tables = ssh(server, "runuser -u postgres -- psql -At -d app -c '\\dt'").stdout
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
