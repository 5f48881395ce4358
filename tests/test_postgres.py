"""postgres on real sandbox hosts: idempotence with passwords, access from app hosts and refusal
from others, reload versus restart, data kept, drops, pgBackRest backups (failures visible),
point-in-time recovery to a time and to the latest archived WAL, and retention."""

import json
import secrets as random
import subprocess
import threading
import time

import pytest
from s3_server import BUCKET, moto

from keel import ROOT
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DATA = ROOT / "roles/postgres/tests/data.py"
DEPLOY = "tests/deploys/data_services.py"
MB = 1 << 20
PASSWORDS = {"postgres_app_password": "app-Pw-1f0c3e8a", "postgres_reporting_password":
             "rep-Pw-9b2d77e1", "postgres_backup_cipher_pass": "cipher-Pw-6d0e4b2a9c",
             # The exporter on db hosts needs its login's secret to validate.
             "postgres_monitor_password": "mon-Pw-3a7c61d0"}
CLIENT = ("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
          "postgresql-client >/dev/null")
PGDATA = "/var/lib/postgresql/15/main"
REPO = "/var/lib/pgbackrest"
METRICS = "/var/lib/prometheus/node-exporter/keel_pg_backup.prom"


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
    """psql on the app host, installed while the db host converges."""
    _, app, _ = hosts
    result = {}

    def install():
        result["proc"] = ssh(app, "apt-get update -qq && " + CLIENT, timeout=600)

    thread = threading.Thread(target=install)
    thread.start()
    yield lambda: (thread.join(), result)[1]["proc"]
    thread.join()


@pytest.fixture(scope="module")
def data(hosts, secrets_env):
    for name, value in PASSWORDS.items():
        secrets_env.set(name, value)
    # d-app1 is a database client here, with no app data to back up (deploys/backup.py would
    # run restic there, which the sandbox environment turns on).
    return {"restic_enabled": False}


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
    assert "pgBackRest stanza main with a full backup" in changed(first)
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
                        f"/root /tmp /var/backups /var/lib/keel {REPO}; true").stdout
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


def info(db) -> dict:
    out = ssh(db, "cd / && runuser -u postgres -- pgbackrest --config=/run/keel/secrets/postgres/"
                  "pgbackrest.conf --stanza=main info --output=json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def counts(db) -> dict[str, int]:
    kinds = [b["type"] for b in info(db)["backup"]]
    return {k: kinds.count(k) for k in ("full", "diff", "incr")}


def metrics(db) -> str:
    return ssh(db, f"keel-pg-backup metrics && cat {METRICS}").stdout


def test_backups_happen_encrypted_with_metrics(converged, harness, hosts):
    db = hosts[0]
    inv, _ = converged
    assert counts(db)["full"] == 1  # converge takes the first full backup
    backup = harness.converge(inv, "deploys/backup.py")
    assert changed(backup) == ["Back up PostgreSQL now (diff)"]
    assert counts(db)["diff"] == 1
    # Encrypted with the key from secrets: the repository's files are not readable without it.
    assert info(db)["cipher"] == "aes-256-cbc"
    assert ssh(db, f"grep -rqa 'backup-label' {REPO}/backup/main/backup.info").returncode != 0
    found = metrics(db)
    assert 'keel_pg_backup_last_status{type="diff"} 1' in found
    assert 'keel_pg_backup_last_success_timestamp_seconds{type="full"}' in found
    assert 'keel_pg_backup_count{type="diff"} 1' in found
    assert "keel_pg_archive_lag_seconds 0" in found
    mode = ssh(db, "stat -c '%U %a' /run/keel/secrets/postgres/pgbackrest.conf").stdout.split()
    assert mode == ["postgres", "400"]


def test_unconfirmed_restore_is_refused(converged, harness, hosts, data):
    db = hosts[0]
    started = _times(db)[0]
    for more, expected in (({}, "postgres_restore_target"),
                           ({"postgres_restore_target": "latest"}, "postgres_restore_confirm")):
        refused = harness.run(inventory(harness, hosts, data, "unconfirmed", **more),
                              "deploys/restore.py")
        assert refused.returncode != 0 and expected in refused.output
    assert _times(db)[0] == started  # PostgreSQL was not touched


def _archived(db, wal: str, timeout: int = 90) -> float:
    """Seconds until the WAL segment named was archived (archive_timeout switches it)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        last = as_postgres(db, "select coalesce(last_archived_wal, '') from pg_stat_archiver",
                           "postgres")
        if last >= wal:
            return time.monotonic() - start
        time.sleep(1)
    state = as_postgres(db, "select * from pg_stat_archiver", "postgres")
    logs = ssh(db, "tail -n 30 /var/log/postgresql/postgresql-15-main.log").stdout
    raise AssertionError(f"{wal} not archived within {timeout}s: {state}\n{logs}")


def test_point_in_time_recovery(converged, harness, hosts, data, report_duration):
    """Rows A, a failed scheduled backup, time T, rows B, a restart while archiving, rows C;
    the data directory lost: restore to latest has A+B+C; restore to T has exactly A."""
    db = hosts[0]
    # The earlier tests left other data converged (max_connections, dropped role and database):
    # back to the module's data, which must still converge with nothing to do after restores.
    harness.converge(converged[0], DEPLOY)
    as_postgres(db, "set role app; create table pitr (i int primary key, at timestamptz "
                    "default now()); "
                    "insert into pitr (i) select generate_series(1, 100)")
    # A scheduled backup that fails (the repository's backup directory unwritable) fails its
    # unit and its metric; archiving goes on.
    ssh(db, f"chmod 000 {REPO}/backup")
    try:
        assert ssh(db, "systemctl start keel-pg-backup@diff.service").returncode != 0
        assert ssh(db, "systemctl is-failed keel-pg-backup@diff.service").stdout.strip() \
            == "failed"
        assert 'keel_pg_backup_last_status{type="diff"} 0' in metrics(db)
    finally:
        ssh(db, f"chmod 750 {REPO}/backup && systemctl reset-failed keel-pg-backup@diff.service")
    time.sleep(1.5)
    target = as_postgres(db, "select now()", "postgres")
    time.sleep(1.5)
    as_postgres(db, "insert into pitr (i) select generate_series(101, 200)")
    # PostgreSQL restarts while the segment holding B is handed to the archiver.
    as_postgres(db, "select pg_switch_wal()", "postgres")
    assert ssh(db, "systemctl restart postgresql@15-main").returncode == 0
    as_postgres(db, "insert into pitr (i) select generate_series(201, 300)")
    wal = as_postgres(db, "select pg_walfile_name(pg_current_wal_lsn())", "postgres")
    rpo = _archived(db, wal)  # no manual switch: archive_timeout bounds the loss
    report_duration("postgres RPO (last write to archived)", rpo)
    assert rpo <= 10 + 15

    # The disk is lost.
    assert ssh(db, f"systemctl stop postgresql@15-main && rm -rf {PGDATA}").returncode == 0
    latest = inventory(harness, hosts, data, "latest", postgres_restore_target="latest",
                       postgres_restore_confirm=True)
    start = time.monotonic()
    restore = harness.converge(latest, "deploys/restore.py")
    report_duration("postgres RTO (restore to latest, lost data directory)",
                    time.monotonic() - start)
    assert changed(restore) == ["Restore PostgreSQL to latest (safety backup first)"]
    assert as_postgres(db, "select count(*), min(i), max(i) from pitr") == "300|1|300"

    before = counts(db)
    to_time = inventory(harness, hosts, data, "to_time", postgres_restore_target=target,
                        postgres_restore_confirm=True)
    start = time.monotonic()
    harness.converge(to_time, "deploys/restore.py")
    report_duration("postgres RTO (restore to a time)", time.monotonic() - start)
    assert as_postgres(db, "select count(*), min(i), max(i) from pitr") == "100|1|100"
    assert counts(db)["incr"] == before["incr"] + 1  # the safety backup
    assert any(b.get("annotation") == {"keel": "pre-restore"} for b in info(db)["backup"])
    # The cluster is writable and still converges (with the data it had before) with nothing
    # to do.
    as_postgres(db, "insert into pitr (i) values (1000)")
    assert harness.converge(converged[0], DEPLOY).changed() == {}


def test_retention_from_data(converged, harness, hosts, data):
    """With retention of 1 full and 1 differential (test data), more backups expire the rest."""
    db = hosts[0]
    inv, _ = converged
    harness.converge(inventory(harness, hosts, data, "full", postgres_backup_now="full"),
                     "deploys/backup.py")
    for _ in range(2):
        harness.converge(inv, "deploys/backup.py")
    assert counts(db) == {"full": 1, "diff": 1, "incr": 0}
    assert 'keel_pg_backup_count{type="full"} 1' in metrics(db)


def test_repository_in_s3_over_tls(converged, harness, hosts, data, secrets_env,
                                   report_duration):
    """The repository moved to S3-compatible storage: moto on the db host, over TLS with a
    certificate from the sandbox's CA (pgBackRest verifies it against `ca_bundle`). The
    converge creates the stanza there with a full backup and `pgbackrest check` passes; WAL
    goes there, and a restore to latest comes back from there with every row."""
    from keel.core import ca

    db = hosts[0]
    ca.ensure("sandbox")  # another module of this worker may have made it
    key, cert = ca.issue("sandbox", ["localhost"])
    tls = "/etc/keel-test-s3"
    for name, pem, mode in (("key.pem", key.decode(), "600"), ("cert.pem", cert.decode(), "644"),
                            ("ca.pem", ca.cert("sandbox"), "644")):
        put = run_as(db, f"mkdir -p {tls} && cat > {tls}/{name} && chmod {mode} {tls}/{name}",
                     stdin=pem)
        assert put.returncode == 0, put.stderr
    assert ssh(db, moto(5443, tls), timeout=600).returncode == 0
    keys = {"postgres_s3_access_key": "AKIA" + random.token_hex(8),
            "postgres_s3_secret_key": random.token_hex(20)}
    for name, value in keys.items():
        secrets_env.set(name, value)
    s3 = {"bucket": BUCKET, "endpoint_url": "https://localhost:5443", "ca_bundle": f"{tls}/ca.pem",
          "access_key_secret": "postgres_s3_access_key",
          "secret_key_secret": "postgres_s3_secret_key"}
    inv = inventory(harness, hosts, data, "s3", postgres_backup_s3=s3)
    first, second, plan = harness.assert_idempotent(inv, DEPLOY)
    assert "pgBackRest stanza main with a full backup" in changed(first)
    assert counts(db) == {"full": 1, "diff": 0, "incr": 0}
    for run in (first, second, plan):
        assert not any(value in run.output for value in keys.values())
    pages = ("boto3.client('s3', endpoint_url='https://localhost:5443', region_name='us-east-1', "
             f"verify='{tls}/ca.pem', aws_access_key_id='x', aws_secret_access_key='x')"
             f".get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}')")
    listed = ssh(db, f"/opt/moto/bin/python -c \"import boto3; print('\\n'.join(o['Key'] for p "
                     f"in {pages} for o in p['Contents']))\"").stdout.split()
    assert "var/lib/pgbackrest/backup/main/backup.info" in listed, listed[-5:]
    assert any(k.startswith("var/lib/pgbackrest/archive/main/15-1/") for k in listed)

    as_postgres(db, "create table s3 (i int); insert into s3 select generate_series(1, 50)")
    wal = as_postgres(db, "select pg_walfile_name(pg_current_wal_lsn())", "postgres")
    _archived(db, wal)
    assert ssh(db, f"systemctl stop postgresql@15-main && rm -rf {PGDATA}").returncode == 0
    latest = inventory(harness, hosts, data, "s3_latest", postgres_backup_s3=s3,
                       postgres_restore_target="latest", postgres_restore_confirm=True)
    start = time.monotonic()
    harness.converge(latest, "deploys/restore.py")
    report_duration("postgres RTO from S3 (restore to latest, lost data directory)",
                    time.monotonic() - start)
    assert as_postgres(db, "select count(*) from s3") == "50"
