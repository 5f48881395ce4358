#!/usr/bin/python3
# managed by keel: roles/postgres
"""PostgreSQL backups: pg_dump -Fc per database, N daily and M weekly kept, optional S3 upload.

    keel-pg-backup backup             dump every configured database (the timer runs this)
    keel-pg-backup list               list the backups kept here
    keel-pg-backup restore NAME DB    restore backup NAME into database DB (dumps DB first)

Runs as root; pg_dump and pg_restore run as postgres (peer auth). Settings come from
/etc/keel/postgres-backup.json. Each run writes node exporter textfile metrics (see the role's
README) and exits non-zero if any database failed, so the unit fails visibly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

CONFIG = Path("/etc/keel/postgres-backup.json")
STATE = Path("/var/lib/keel/postgres-backup.json")
METRICS_FILE = "keel_backup.prom"
AS_POSTGRES = ["runuser", "-u", "postgres", "--"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def psql(sql: str) -> list[str]:
    out = subprocess.run([*AS_POSTGRES, "psql", "-XAtq", "-d", "postgres", "-c", sql],
                         check=True, capture_output=True, text=True, cwd="/").stdout
    return out.split()


def databases(config: dict) -> list[str]:
    return config["databases"] or psql(
        "select datname from pg_database where not datistemplate and datname <> 'postgres' "
        "order by 1")


def kept(directory: Path, database: str) -> list[Path]:
    """A database's dumps in a directory, oldest first (names sort by time)."""
    return sorted(p for p in directory.glob(f"{database}_*.dump")
                  if p.stem.rsplit("_", 1)[0] == database)


def dump(database: str, dest: Path) -> None:
    partial = dest.with_name(f".{dest.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        subprocess.run([*AS_POSTGRES, "pg_dump", "-Fc", "-d", database], stdout=out, check=True,
                       cwd="/")
    # A dump pg_restore cannot list is not a backup.
    with open(partial, "rb") as f:
        subprocess.run([*AS_POSTGRES, "pg_restore", "--list"], stdin=f, check=True, cwd="/",
                       stdout=subprocess.DEVNULL)
    partial.rename(dest)


def s3_client(s3: dict):
    # The keys are read by boto3 from the delivered credentials file, nowhere else.
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = s3["credentials_file"]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    import boto3  # only hosts that upload have it (python3-boto3)

    return boto3.client("s3", endpoint_url=s3.get("endpoint_url"), region_name=s3["region"],
                        verify=s3.get("ca_bundle") or True)


def s3_key(s3: dict, path: Path) -> str:
    return "/".join(p for p in (s3["prefix"].strip("/"), path.parent.name, path.name) if p)


def backup(config: dict) -> int:
    root = Path(config["dir"])
    daily, weekly = root / "daily", root / "weekly"
    for directory in (daily, weekly):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    s3 = config["s3"]
    client = None
    failed = 0
    try:
        wanted = databases(config)
        # Metrics cover the databases backed up now: a dropped one stops being reported.
        state = {name: record for name, record in state.items() if name in wanted}
    except subprocess.CalledProcessError as exc:
        # PostgreSQL does not answer: every database known from earlier runs failed.
        log(f"cannot list databases: {exc.stderr.strip()}")
        wanted, failed = [], 1
        for record in state.values():
            record.update(status=0, last_run=time.time())
    for database in wanted:
        started = time.time()
        now = datetime.now(UTC)
        record = state.setdefault(database, {})
        record["last_run"] = started
        try:
            path = daily / f"{database}_{now:%Y%m%dT%H%M%SZ}.dump"
            dump(database, path)
            made = [path]
            week = now.strftime("%G-W%V")
            if config["keep_weekly"] and not any(
                    datetime.strptime(p.stem.rsplit("_", 1)[1], "%Y%m%dT%H%M%SZ")
                    .strftime("%G-W%V") == week for p in kept(weekly, database)):
                os.link(path, weekly / path.name)
                made.append(weekly / path.name)
            for directory, keep in ((daily, config["keep_daily"]),
                                    (weekly, config["keep_weekly"])):
                for old in kept(directory, database)[:-keep or None]:
                    old.unlink()
            if s3:
                client = client or s3_client(s3)
                for p in made:
                    client.upload_file(str(p), s3["bucket"], s3_key(s3, p))
            record.update(status=1, last_success=time.time(), size=path.stat().st_size,
                          duration=time.time() - started)
            log(f"{database}: {path} ({path.stat().st_size} bytes)"
                + (f", uploaded to s3://{s3['bucket']}/{s3_key(s3, path)}" if s3 else ""))
        except Exception as exc:  # noqa: BLE001 - any failure is reported and counted
            failed += 1
            record.update(status=0, duration=time.time() - started)
            log(f"{database}: backup FAILED: {exc}")
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=1))
    write_metrics(Path(config["metrics_dir"]), state)
    return 1 if failed else 0


def write_metrics(directory: Path, state: dict) -> None:
    metrics = {
        "keel_backup_last_success_timestamp_seconds":
            ("gauge", "Time of the last successful backup of a database.", "last_success"),
        "keel_backup_last_run_timestamp_seconds":
            ("gauge", "Time of the last backup attempt of a database.", "last_run"),
        "keel_backup_last_status":
            ("gauge", "1 if the last backup of a database succeeded, else 0.", "status"),
        "keel_backup_last_size_bytes":
            ("gauge", "Size of the last successful backup of a database.", "size"),
        "keel_backup_last_duration_seconds":
            ("gauge", "How long the last backup of a database took.", "duration"),
    }
    lines = []
    for name, (kind, help_text, field) in metrics.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for database, record in sorted(state.items()):
            if field in record:
                lines.append(f'{name}{{database="{database}"}} {record[field]}')
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{METRICS_FILE}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)
    tmp.rename(directory / METRICS_FILE)  # atomic: the exporter never reads half a file


def find(config: dict, name: str) -> Path:
    """A backup by file name (or daily/NAME, weekly/NAME); fetched from S3 if not kept here."""
    root = Path(config["dir"])
    candidates = [root / name] if "/" in name else [root / "daily" / name, root / "weekly" / name]
    for path in candidates:
        if path.is_file():
            return path
    s3 = config["s3"]
    if s3:
        client = s3_client(s3)
        dest = root / "restore" / Path(name).name
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in candidates:
            try:
                client.download_file(s3["bucket"], s3_key(s3, path), str(dest))
                return dest
            except Exception:  # noqa: BLE001 - try the next place
                continue
    raise SystemExit(f"no backup named {name} in {root}/daily, {root}/weekly"
                     + (" or S3" if s3 else ""))


def restore(config: dict, name: str, database: str) -> int:
    source = find(config, name)
    if database not in psql("select datname from pg_database"):
        raise SystemExit(f"database {database} does not exist (converge the role first)")
    safety = Path(config["dir"]) / "pre-restore" / (
        f"{database}_{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump")
    safety.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    dump(database, safety)
    log(f"{database}: current contents saved to {safety}")
    with open(source, "rb") as f:
        subprocess.run([*AS_POSTGRES, "pg_restore", "--clean", "--if-exists",
                        "--single-transaction", "--exit-on-error", "-d", database], stdin=f,
                       check=True, cwd="/")
    log(f"{database}: restored from {source}")
    return 0


def main(argv: list[str]) -> int:
    config = json.loads(CONFIG.read_text())
    if argv == ["backup"]:
        return backup(config)
    if argv == ["list"]:
        for directory in ("daily", "weekly", "pre-restore"):
            for path in sorted((Path(config["dir"]) / directory).glob("*.dump")):
                print(f"{directory}/{path.name}\t{path.stat().st_size}")
        return 0
    if len(argv) == 3 and argv[0] == "restore":
        return restore(config, argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
