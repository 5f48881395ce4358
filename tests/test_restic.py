"""restic on a real app host: the storage role's DATA_DIR (declared) and a data-listed set behind
a small HTTP service are backed up with a pre-backup hook, destroyed and restored byte for byte
with the service stopped and started; retention per the data's counts on seeded snapshots;
failures visible; no password in output or on disk outside tmpfs. Also the app role's
declarations (critical volumes, backup hook, unit), checked without a host."""

import json
import random as rnd
import secrets as random
import time
from datetime import UTC, datetime, timedelta

import pytest
from s3_server import BUCKET, MOTO

from keel import ROOT
from keel.lab.testing import run_testinfra, ssh

DATA = ROOT / "roles/restic/tests/data.py"
DEPLOY = "tests/deploys/restic.py"
PASSWORD = "restic-Pw-" + random.token_hex(12)
DATA_DIR = "/srv/app/data"
# The service whose data is the "uploads" set: it serves /srv/uploads over HTTP.
UNIT = """[Unit]
Description=uploads (test service)
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /srv/uploads
"""


def test_app_declares_critical_volumes_with_hook_and_unit():
    from roles.app import declares
    from roles.app.schema import Settings

    settings = Settings.model_validate({
        "app_volumes": {"pgdata": {"critical": True}, "cache": {}},
        "app_services": {
            "db": {"image": "postgres:15", "backup_hook": ["sh", "-c", "pg_dumpall > /d/x.sql"],
                   "volumes": [{"source": "pgdata", "target": "/d"},
                               {"source": "cache", "target": "/c"}]},
            "web": {"image": "nginx", "volumes": [{"source": "cache", "target": "/c"}]}}})
    (item,) = [d.item for d in declares(settings, {})]
    assert item == {"name": "app-db", "volumes": ["pgdata"], "engine": "podman",
                    "pre_backup": "podman exec db sh -c 'pg_dumpall > /d/x.sql'",
                    "units": ["app-db.service"]}


@pytest.fixture(scope="module")
def app(sandbox_hosts):
    (host,) = sandbox_hosts("r-app1")
    return host


@pytest.fixture(scope="module")
def inventory(harness, app, secrets_env):
    secrets_env.set("restic_password", PASSWORD)
    return harness.inventory({"app": [app]}, data_files=[DATA])


@pytest.fixture(scope="module")
def converged(harness, app, inventory):
    setup = ("apt-get update -qq && mkdir -p /srv/uploads && "
             f"printf '%s' '{UNIT}' > /etc/systemd/system/keel-uploads.service && "
             "systemctl daemon-reload && systemctl start keel-uploads.service")
    assert ssh(app, setup, timeout=300).returncode == 0
    return harness.assert_idempotent(inventory, DEPLOY)


def served(host) -> str:
    """SHA-256 of report.bin as the service serves it ('' when it does not answer)."""
    get = ("import hashlib, urllib.request; print(hashlib.sha256(urllib.request.urlopen("
           "'http://127.0.0.1:8080/report.bin', timeout=5).read()).hexdigest())")
    return ssh(host, f'python3 -c "{get}"').stdout.strip()


def sh(host, command: str, timeout: int = 120) -> str:
    out = ssh(host, command, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.sandbox
def test_converges_then_nothing_to_do(converged):
    first, second, plan = converged
    names = [op.split(" | ", 1)[-1] for op in first.changed().get("r-app1", [])]
    assert "Initialise the restic repository" in names
    assert second.changed() == {} and plan.changed() == {}


@pytest.mark.sandbox
def test_testinfra_checks(converged, app):
    result = run_testinfra([app], ROOT / "roles/restic/tests")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.sandbox
def test_backup_destroy_restore_byte_for_byte(converged, harness, app, inventory):
    # Data written: through the storage directory, and files the service serves.
    sh(app, f"head -c 3000000 /dev/urandom > {DATA_DIR}/db/blob.bin && "
            f"chown app:app {DATA_DIR}/db/blob.bin && "
            "head -c 200000 /dev/urandom > /srv/uploads/report.bin")
    before = sh(app, f"cd / && sha256sum {DATA_DIR}/db/blob.bin /srv/uploads/report.bin")
    assert served(app) == before.split()[2]
    run = harness.converge(inventory, "deploys/backup.py")
    assert [op.split(" | ", 1)[-1] for op in run.changed()["r-app1"]] == ["Back up app data now"]
    assert sh(app, "cat /srv/uploads/.pre-backup").strip()  # the hook ran before the backup
    metrics = sh(app, "cat /var/lib/prometheus/node-exporter/keel_restic.prom")
    for name in ("storage", "uploads"):
        assert f'keel_restic_last_status{{set="{name}"}} 1' in metrics
        assert f'keel_restic_last_success_timestamp_seconds{{set="{name}"}}' in metrics

    # Destroyed.
    sh(app, f"rm -rf {DATA_DIR} /srv/uploads")
    refused = harness.run(harness.inventory({"app": [app]}, data_files=[DATA], name="unconf",
                                            data={"restic_restore_set": "uploads"}),
                          "deploys/restore.py")
    assert refused.returncode != 0 and "restic_restore_confirm" in refused.output
    started = sh(app, "systemctl show -P ActiveEnterTimestampMonotonic keel-uploads.service")
    start = time.monotonic()
    for name in ("storage", "uploads"):
        confirmed = harness.inventory({"app": [app]}, data_files=[DATA], name=f"restore_{name}",
                                      data={"restic_restore_set": name,
                                            "restic_restore_confirm": True})
        harness.converge(confirmed, "deploys/restore.py")
    rto = time.monotonic() - start
    print(f"restic RTO (two sets, 3.2 MB, two converges): {rto:.1f} s")
    assert sh(app, f"cd / && sha256sum {DATA_DIR}/db/blob.bin /srv/uploads/report.bin") == before
    assert sh(app, f"stat -c '%U %a' {DATA_DIR} {DATA_DIR}/db/blob.bin").split() == \
        ["app", "750", "app", "644"]
    # The service was stopped and started again, and serves the restored bytes.
    assert sh(app, "systemctl show -P ActiveEnterTimestampMonotonic keel-uploads.service") \
        != started
    for _ in range(20):
        if served(app) == before.split()[2]:
            break
        time.sleep(0.5)
    assert served(app) == before.split()[2]
    # The storage role's own live check passes on the restored DATA_DIR.
    assert harness.converge(inventory, DEPLOY).changed() == {}


@pytest.mark.sandbox
def test_failed_backup_is_visible(converged, app):
    conf = "/etc/keel/restic.json"
    broken = (f"import json; c = json.load(open('{conf}')); "
              f"c['sets'][-1]['pre_backup'] = 'exit 3'; json.dump(c, open('{conf}', 'w'))")
    sh(app, f"cp {conf} /root/restic.json && python3 -c \"{broken}\"")
    try:
        assert ssh(app, "systemctl start keel-restic.service").returncode != 0
        metrics = sh(app, "cat /var/lib/prometheus/node-exporter/keel_restic.prom")
        assert 'keel_restic_last_status{set="uploads"} 0' in metrics
        assert 'keel_restic_last_status{set="storage"} 1' in metrics
    finally:
        sh(app, f"mv /root/restic.json {conf} && systemctl reset-failed keel-restic.service")


def _expected(times: list[datetime], daily: int, weekly: int, monthly: int) -> int:
    """restic's policy, independently: the newest snapshot of each of the N newest days,
    ISO weeks and months; a snapshot kept for several reasons counts once."""
    kept = set()
    for n, bucket in ((daily, lambda t: t.date()), (weekly, lambda t: t.isocalendar()[:2]),
                      (monthly, lambda t: (t.year, t.month))):
        seen = []
        for t in sorted(times, reverse=True):
            if bucket(t) not in seen:
                if len(seen) == n:
                    break
                seen.append(bucket(t))
                kept.add(t)
    return len(kept)


@pytest.mark.sandbox
def test_retention_counts_match_the_data(converged, app):
    """Seeded snapshots over 14 months (restic backup --time): forget --dry-run with the
    defaults of seed 004 (30 daily, 12 weekly, 12 monthly) keeps what the policy says."""
    now = datetime.now(UTC).replace(microsecond=0)
    rng = rnd.Random(4)
    times = sorted({now - timedelta(days=d, hours=rng.randrange(0, 20))
                    for d in [*range(0, 34), *range(34, 440, 10)]})
    script = "; ".join(
        f"restic backup -q --tag set:seed --host $(hostname) --time '{t:%Y-%m-%d %H:%M:%S}' "
        "/etc/hostname" for t in times)
    env = ("export RESTIC_REPOSITORY=/var/backups/restic "
           "RESTIC_PASSWORD_FILE=/run/keel/secrets/restic/password TZ=UTC; ")
    sh(app, env + script, timeout=900)
    found = json.loads(sh(app, "keel-restic forget --dry-run seed"))["seed"]
    assert found["keep"] + found["remove"] == len(times)
    assert found["keep"] == _expected(times, 30, 12, 12)


@pytest.mark.sandbox
def test_no_password_in_output_or_on_disk(converged, app):
    for run in converged:
        assert PASSWORD not in run.output
    found = sh(app, f"grep -rIlF -- '{PASSWORD}' /etc /var/log /var/lib /var/backups /usr/local "
                    "/root /tmp /srv; true")
    assert found == ""


@pytest.mark.sandbox
def test_repository_in_s3(converged, harness, app, secrets_env, report_duration):
    """The repository in S3-compatible storage (moto's server on the host): converge
    initialises it, a backup goes there, DATA_DIR is destroyed and restored from it byte for
    byte; the keys are in no output and rest in tmpfs only."""
    assert ssh(app, MOTO, timeout=600).returncode == 0
    keys = {"restic_s3_access_key": "AKIA" + random.token_hex(8),
            "restic_s3_secret_key": random.token_hex(20)}
    for name, value in keys.items():
        secrets_env.set(name, value)
    s3 = {"bucket": BUCKET, "endpoint_url": "http://127.0.0.1:5000", "path": "restic",
          "access_key_secret": "restic_s3_access_key", "secret_key_secret": "restic_s3_secret_key"}
    inv = harness.inventory({"app": [app]}, data_files=[DATA], data={"restic_s3": s3}, name="s3")
    runs = harness.assert_idempotent(inv, DEPLOY)
    assert "Initialise the restic repository" in \
        [op.split(" | ", 1)[-1] for op in runs[0].changed()["r-app1"]]
    sh(app, f"mkdir -p {DATA_DIR}/db && head -c 1000000 /dev/urandom > {DATA_DIR}/db/s3.bin")
    before = sh(app, f"cd / && sha256sum {DATA_DIR}/db/s3.bin")
    harness.converge(inv, "deploys/backup.py")
    listed = sh(app, "/opt/moto/bin/python -c \"import boto3; print('\\n'.join(o['Key'] for o in "
                     "boto3.client('s3', endpoint_url='http://127.0.0.1:5000', region_name="
                     "'us-east-1', aws_access_key_id='x', aws_secret_access_key='x')"
                     f".list_objects_v2(Bucket='{BUCKET}', Prefix='restic/')['Contents']))\"")
    assert "restic/config" in listed.split() and "restic/snapshots/" in listed

    sh(app, f"rm -rf {DATA_DIR}")
    restore = harness.inventory({"app": [app]}, data_files=[DATA], name="s3_restore", data={
        "restic_s3": s3, "restic_restore_set": "storage", "restic_restore_confirm": True})
    start = time.monotonic()
    harness.converge(restore, "deploys/restore.py")
    report_duration("restic RTO from S3 (DATA_DIR, 1 MB)", time.monotonic() - start)
    assert sh(app, f"cd / && sha256sum {DATA_DIR}/db/s3.bin") == before
    for run in runs:
        assert not any(value in run.output for value in keys.values())
    for value in keys.values():
        assert sh(app, f"grep -rIlF -- '{value}' /etc /var/lib /usr/local /root /tmp /srv; "
                       "true") == ""
    assert sh(app, "findmnt -no FSTYPE -T /run/keel/secrets/restic/s3.env").strip() == "tmpfs"
