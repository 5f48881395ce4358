"""postgres on real sandbox hosts: idempotence with passwords, access from app hosts and refusal
from others, reload versus restart, data kept, drops, backups to S3 (moto) and restores."""

import re
import subprocess
import threading

import pytest

from keel import ROOT
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DATA = ROOT / "roles/postgres/tests/data.py"
DEPLOY = "tests/deploys/data_services.py"
MB = 1 << 20
PASSWORDS = {"postgres_app_password": "app-Pw-1f0c3e8a", "postgres_reporting_password":
             "rep-Pw-9b2d77e1", "postgres_s3_access_key": "s3-ak-5c1e0a7d",
             "postgres_s3_secret_key": "s3-sk-8e4f2b90",
             # The exporter on db hosts needs its login's secret to validate.
             "postgres_monitor_password": "mon-Pw-3a7c61d0"}
# moto serves S3 on the app host; the db host uploads there (sandbox traffic only).
MOTO = ("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
        "postgresql-client python3-pip python3-boto3 python3-flask python3-flask-cors "
        "python3-werkzeug python3-xmltodict python3-responses python3-dateutil python3-jinja2 "
        "python3-cryptography python3-yaml "
        ">/dev/null && pip install -q --no-deps --break-system-packages moto 2>/dev/null && "
        "systemd-run --unit=moto python3 -m moto.server -H 0.0.0.0 -p 5000")


def changed(run, host: str = "d-db1") -> list[str]:
    """Names of the operations that changed a host, without the deploy prefix."""
    return [op.split(" | ", 1)[-1] for op in run.changed().get(host, [])]


def run_as(host, command: str, stdin: str = "", timeout: int = 120):
    """A command on a host with a secret on stdin (never in the command line)."""
    return subprocess.run(host.ssh_argv(command), input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def as_postgres(host, sql: str, database: str = "app") -> str:
    out = ssh(host, f"cd / && runuser -u postgres -- psql -XAtq -d {database} -c \"{sql}\"")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def psql_from(client, db_host, user: str, password: str, sql: str, database: str = "app"):
    return run_as(client, f"read -r PGPASSWORD; export PGPASSWORD; psql -XAtq -v ON_ERROR_STOP=1 "
                          f"-h {db_host.address} -U {user} -d {database} -c \"{sql}\"",
                  stdin=password + "\n")


@pytest.fixture(scope="module")
def hosts(sandbox_hosts):
    return sandbox_hosts("d-db1", "d-app1", "d-other1")


@pytest.fixture(scope="module")
def app_host_tools(hosts):
    """psql and an S3 server (moto) on the app host, installed while the db host converges."""
    _, app, _ = hosts
    result = {}

    def install():
        result["proc"] = ssh(app, "apt-get update -qq && " + MOTO, timeout=600)

    thread = threading.Thread(target=install)
    thread.start()
    yield lambda: (thread.join(), result)[1]["proc"]
    thread.join()


@pytest.fixture(scope="module")
def data(hosts, secrets_env):
    _, app, _ = hosts
    for name, value in PASSWORDS.items():
        secrets_env.set(name, value)
    return {"postgres_backup_s3": {
        "endpoint_url": f"http://{app.address}:5000", "bucket": "keel-backups",
        "prefix": "d-db1", "access_key_secret": "postgres_s3_access_key",
        "secret_key_secret": "postgres_s3_secret_key"}}


def inventory(harness, hosts, data, name="inventory", **more):
    db, app, other = hosts
    return harness.inventory({"db": [db], "app": [app], "other": [other]}, data_files=[DATA],
                             data={**data, **more}, name=name)


@pytest.fixture(scope="module")
def converged(harness, hosts, data, app_host_tools):
    db = hosts[0]
    assert ssh(db, "apt-get update -qq", timeout=300).returncode == 0
    inv = inventory(harness, hosts, data)
    return inv, harness.assert_idempotent(inv, DEPLOY)


def test_converges_then_nothing_to_do(converged):
    _, (first, second, plan) = converged
    assert "Set password of PostgreSQL role app" in changed(first)
    assert second.changed() == {} and plan.changed() == {}


def test_testinfra_checks(converged, hosts):
    result = run_testinfra([hosts[0]], ROOT / "roles/postgres/tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_secret_in_output_or_files(converged, hosts):
    _, runs = converged
    db = hosts[0]
    for value in PASSWORDS.values():
        for run in runs:
            assert value not in run.output
        found = ssh(db, f"grep -rIlF -- '{value}' /etc /var/log /var/lib/postgresql /usr/local "
                        "/root /tmp /var/backups; true").stdout
        assert found == "", f"secret on disk in {found}"


def test_role_memberships(converged, hosts):
    db = hosts[0]
    assert as_postgres(db, "select pg_has_role('reporting', 'pg_monitor', 'member')") == "t"
    assert as_postgres(db, "select pg_has_role('app', 'pg_monitor', 'member')") == "f"


def test_settings_scaled_to_memory(converged, hosts):
    db = hosts[0]
    memory = int(ssh(db, "grep MemTotal /proc/meminfo").stdout.split()[1]) * 1024
    shared = memory // 4 // MB * MB
    expected = {"shared_buffers": shared, "effective_cache_size": memory * 3 // 4 // MB * MB,
                "work_mem": max(4 * MB, (memory - shared) // (3 * 50)) // MB * MB,
                "maintenance_work_mem": min(memory // 16, 2 << 30) // MB * MB,
                "min_wal_size": 1 << 30, "max_wal_size": 4 << 30}
    rows = as_postgres(db, "select name, pg_size_bytes(current_setting(name)) from pg_settings "
                           "where name in ('" + "','".join(expected) + "')", "postgres")
    assert dict((n, int(v)) for n, v in (r.split("|") for r in rows.splitlines())) == expected
    assert as_postgres(db, "show max_connections", "postgres") == "50"
    assert as_postgres(db, "show password_encryption", "postgres") == "scram-sha-256"
    assert as_postgres(db, "show listen_addresses", "postgres") == f"localhost,{db.address}"


def test_app_host_has_exactly_the_granted_privileges(converged, hosts, app_host_tools):
    db, app, _ = hosts
    assert app_host_tools().returncode == 0, app_host_tools().stderr
    app_pw, rep_pw = PASSWORDS["postgres_app_password"], PASSWORDS["postgres_reporting_password"]
    owner = psql_from(app, db, "app", app_pw, "create table t (id serial primary key, v text); "
                                              "insert into t (v) select 'row' from "
                                              "generate_series(1, 100); select count(*) from t")
    assert owner.returncode == 0 and owner.stdout.strip() == "100", owner.stderr
    reads = psql_from(app, db, "reporting", rep_pw, "select count(*) from t")
    assert reads.stdout.strip() == "100", reads.stderr
    for sql, error in [("insert into t (v) values ('x')", "permission denied for table t"),
                       ("delete from t", "permission denied for table t"),
                       ("create table mine (i int)", "permission denied for schema public")]:
        denied = psql_from(app, db, "reporting", rep_pw, sql)
        assert denied.returncode != 0 and error in denied.stderr, (sql, denied.stderr)
    # Tables the owner makes later are readable through default privileges.
    assert psql_from(app, db, "app", app_pw, "create table later (i int)").returncode == 0
    assert psql_from(app, db, "reporting", rep_pw, "select count(*) from later"
                     ).stdout.strip() == "0"
    # No CONNECT on a database whose grants do not name the role (PUBLIC's was revoked).
    other_db = psql_from(app, db, "app", app_pw, "select 1", database="audit")
    assert "permission denied for database \"audit\"" in other_db.stderr
    wrong = psql_from(app, db, "app", "not-the-password", "select 1")
    assert "password authentication failed" in wrong.stderr


def _startup(client, db_host) -> str:
    """A PostgreSQL startup message from a host without any client installed; the reply."""
    probe = (f"import socket, struct; s = socket.create_connection(('{db_host.address}', 5432), "
             "timeout=5); p = b'user\\0app\\0database\\0app\\0\\0'; "
             "s.sendall(struct.pack('!ii', 8 + len(p), 196608) + p); print(s.recv(4096))")
    return ssh(client, f'python3 -c "{probe}"').stdout


def test_host_pg_hba_does_not_list_is_refused(converged, hosts):
    db, app, other = hosts
    assert "no pg_hba.conf entry for host" in _startup(other, db)
    assert _startup(app, db).startswith("b'R")  # an app host is asked for its password


def test_password_rotation_sets_only_that_password(converged, harness, hosts, data,
                                                   secrets_env, app_host_tools):
    db, app, _ = hosts
    inv, _ = converged
    old = PASSWORDS["postgres_app_password"]
    PASSWORDS["postgres_app_password"] = new = "app-Pw-rotated-77aa"
    secrets_env.set("postgres_app_password", new)
    # With every log level on: commands, their output and facts must not show it either.
    run = harness.converge(inv, DEPLOY, args=["--debug", "-vvv"])
    assert sorted(changed(run)) == ["Deliver password of PostgreSQL role app",
                                              "Set password of PostgreSQL role app"]
    assert new not in run.output and old not in run.output
    assert psql_from(app, db, "app", new, "select 1").stdout.strip() == "1"
    assert "password authentication failed" in psql_from(app, db, "app", old, "select 1").stderr


def _times(db):
    return as_postgres(db, "select pg_postmaster_start_time(), pg_conf_load_time()", "postgres")\
        .split("|")


def test_reload_only_change_does_not_restart(converged, harness, hosts, data):
    db = hosts[0]
    started, loaded = _times(db)
    settings = {"postgres_settings": {"random_page_cost": 1.5, "checkpoint_completion_target": 0.9,
                                      "wal_buffers": "16MB", "default_statistics_target": 100,
                                      "effective_io_concurrency": 200}}
    run = harness.converge(inventory(harness, hosts, data, "reload", **settings), DEPLOY)
    assert set(changed(run)) == {"Write PostgreSQL settings", "Reload PostgreSQL"}
    now_started, now_loaded = _times(db)
    assert now_started == started and now_loaded != loaded
    assert as_postgres(db, "show random_page_cost", "postgres") == "1.5"


def test_a_setting_postgres_refuses_leaves_the_live_config(converged, harness, hosts, data):
    db = hosts[0]
    conf = "/etc/postgresql/15/main/conf.d/keel.conf"
    before = ssh(db, f"cat {conf}").stdout
    started, loaded = _times(db)
    bad = {"postgres_settings": {"random_page_cost": "lots"}}
    run = harness.run(inventory(harness, hosts, data, "refused", **bad), DEPLOY)
    assert run.returncode != 0 and 'invalid value for parameter "random_page_cost"' in run.output
    assert ssh(db, f"cat {conf}").stdout == before  # the old file is back
    assert _times(db) == [started, loaded]  # neither reloaded nor restarted


def test_restart_change_restarts_drops_confirmed_and_keeps_data(converged, harness, hosts, data):
    db = hosts[0]
    count = as_postgres(db, "select count(*) from t")
    # A table the dropped role owns is kept: it goes to postgres.
    as_postgres(db, "create table legacy_t (i int); alter table legacy_t owner to legacy; "
                    "insert into legacy_t values (1)")
    started, _ = _times(db)
    import runpy

    test_data = runpy.run_path(str(DATA))
    roles = [*test_data["postgres_roles"][:2],
             {"name": "legacy", "state": "absent", "confirm_drop": True}]
    databases = [*test_data["postgres_databases"][:2],
                 {"name": "scratch", "owner": "postgres", "state": "absent", "confirm_drop": True}]
    run = harness.converge(inventory(harness, hosts, data, "restart", postgres_max_connections=60,
                                     postgres_roles=roles, postgres_databases=databases), DEPLOY)
    ops = changed(run)
    assert "Restart PostgreSQL (max_connections needs it)" in ops
    assert "Drop database scratch (confirmed in data)" in ops
    assert any(op.startswith("Drop PostgreSQL role legacy") for op in ops)
    assert _times(db)[0] != started
    assert as_postgres(db, "show max_connections", "postgres") == "60"
    assert as_postgres(db, "select count(*) from pg_database where datname = 'scratch'") == "0"
    assert as_postgres(db, "select count(*) from pg_roles where rolname = 'legacy'") == "0"
    assert as_postgres(db, "select count(*) from t") == count == "100"
    assert as_postgres(db, "select tableowner from pg_tables where tablename = 'legacy_t'") \
        == "postgres"


def _backup_names(db) -> list[str]:
    return re.findall(r"daily/(app_\S+\.dump)", ssh(db, "keel-pg-backup list").stdout)


def test_backup_then_restore_after_drop(converged, harness, hosts, data, app_host_tools):
    db, app, _ = hosts
    inv, _ = converged
    assert app_host_tools().returncode == 0
    s3 = ("import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:5000', "
          "aws_access_key_id='a', aws_secret_access_key='b', region_name='us-east-1'); ")
    assert ssh(app, f"python3 -c \"{s3}s3.create_bucket(Bucket='keel-backups')\"").returncode == 0
    backup = harness.converge(inv, "deploys/backup.py")
    assert changed(backup) == ["Back up PostgreSQL now"]
    (name,) = _backup_names(db)
    assert ssh(db, f"test -f /var/backups/postgresql/weekly/{name}").returncode == 0
    metrics = ssh(db, "cat /var/lib/prometheus/node-exporter/keel_backup.prom").stdout
    assert 'keel_backup_last_status{database="app"} 1' in metrics
    assert 'keel_backup_last_success_timestamp_seconds{database="app"}' in metrics
    keys = ssh(app, f"python3 -c \"{s3}print([o['Key'] for o in "
                    "s3.list_objects_v2(Bucket='keel-backups')['Contents']])\"").stdout
    assert f"d-db1/daily/{name}" in keys and f"d-db1/weekly/{name}" in keys

    count = as_postgres(db, "select count(*) from t")
    as_postgres(db, "drop table t cascade")
    refused = harness.run(inventory(harness, hosts, data, "unconfirmed",
                                    postgres_restore_backup=name), "deploys/restore.py")
    assert refused.returncode != 0 and "postgres_restore_confirm" in refused.output
    assert as_postgres(db, "select count(*) from pg_tables where tablename = 't'") == "0"

    confirmed = inventory(harness, hosts, data, "confirmed", postgres_restore_backup=name,
                          postgres_restore_confirm=True)
    restore = harness.converge(confirmed, "deploys/restore.py")
    assert changed(restore) == [f"Restore {name} into database app"]
    assert as_postgres(db, "select count(*) from t") == count
    # Restored privileges too: reporting still reads.
    assert psql_from(app, db, "reporting", PASSWORDS["postgres_reporting_password"],
                     "select count(*) from t").stdout.strip() == count

    # Without the local copies the backup comes back from S3.
    as_postgres(db, "drop table t cascade")
    ssh(db, f"rm /var/backups/postgresql/daily/{name} /var/backups/postgresql/weekly/{name}")
    harness.converge(confirmed, "deploys/restore.py")
    assert as_postgres(db, "select count(*) from t") == count


def test_failed_backup_is_visible(converged, hosts):
    db = hosts[0]
    conf = "/etc/keel/postgres-backup.json"
    broken = (f"import json; c = json.load(open('{conf}')); c['databases'] = ['app', 'nosuch']; "
              f"json.dump(c, open('{conf}', 'w'))")
    assert ssh(db, f"cp {conf} /root/backup.json && python3 -c \"{broken}\"").returncode == 0
    try:
        assert ssh(db, "systemctl start keel-pg-backup.service").returncode != 0
        assert ssh(db, "systemctl is-failed keel-pg-backup.service").stdout.strip() == "failed"
        metrics = ssh(db, "cat /var/lib/prometheus/node-exporter/keel_backup.prom").stdout
        assert 'keel_backup_last_status{database="nosuch"} 0' in metrics
        assert 'keel_backup_last_status{database="app"} 1' in metrics
    finally:
        ssh(db, f"mv /root/backup.json {conf} && systemctl reset-failed keel-pg-backup.service")
