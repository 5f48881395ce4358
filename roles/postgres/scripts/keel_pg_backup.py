#!/usr/bin/python3
# managed by keel: roles/postgres
"""PostgreSQL backups and point-in-time recovery with pgBackRest.

    keel-pg-backup backup full|diff|incr   a backup now (the timers run full and diff)
    keel-pg-backup metrics                 write the textfile metrics (a timer, every minute)
    keel-pg-backup list                    the repository's backups (pgbackrest info)
    keel-pg-backup restore latest|TIME     recover the cluster to the end of the archive or to
                                           TIME ('2026-12-02 03:30:00+00'), safety backup first

Runs as root; pgBackRest runs as postgres with its configuration from /run/keel/secrets (it
holds the repository key). Settings: /etc/keel/pg-backup.json. A failed backup exits non-zero
(the unit fails) and is recorded in the metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

CONFIG = Path("/etc/keel/pg-backup.json")
STATE = Path("/var/lib/keel/pg-backup.json")
METRICS_FILE = "keel_pg_backup.prom"
AS_POSTGRES = ["runuser", "-u", "postgres", "--"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pgbackrest(config: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*AS_POSTGRES, "pgbackrest", f"--config={config['config']}",
                           f"--stanza={config['stanza']}", *args], cwd="/", text=True, **kwargs)


def psql(sql: str) -> str:
    return subprocess.run([*AS_POSTGRES, "psql", "-XAtq", "-d", "postgres", "-c", sql],
                          check=True, capture_output=True, text=True, cwd="/").stdout.strip()


def info(config: dict) -> dict:
    out = pgbackrest(config, "info", "--output=json", capture_output=True)
    stanzas = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []
    return stanzas[0] if stanzas else {}


def state() -> dict:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def backup(config: dict, kind: str) -> int:
    record = state()
    started = time.time()
    result = pgbackrest(config, f"--type={kind}", "backup")
    record[kind] = {"last_run": started, "status": int(result.returncode == 0),
                    "duration": time.time() - started}
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(record, indent=1))
    write_metrics(config)
    if result.returncode:
        log(f"{kind} backup FAILED (pgbackrest exit {result.returncode})")
    return result.returncode


def archive_lag(config: dict) -> tuple[float, int]:
    """(seconds the oldest completed, unarchived WAL segment has waited; how many wait)."""
    status = Path(config["pgdata"]) / "pg_wal" / "archive_status"
    ready = [p.stat().st_mtime for p in status.glob("*.ready")] if status.is_dir() else []
    return (time.time() - min(ready) if ready else 0.0), len(ready)


def write_metrics(config: dict) -> None:
    lines = []

    def metric(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge"])
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    backups = info(config).get("backup", [])
    newest: dict[str, dict] = {}
    for b in backups:
        newest[b["type"]] = b
    metric("keel_pg_backup_last_success_timestamp_seconds",
           "Stop time of the newest backup in the repository, by type.",
           [(f'{{type="{t}"}}', b["timestamp"]["stop"]) for t, b in sorted(newest.items())])
    metric("keel_pg_backup_last_size_bytes", "Database size of the newest backup, by type.",
           [(f'{{type="{t}"}}', b["info"]["size"]) for t, b in sorted(newest.items())])
    metric("keel_pg_backup_count", "Backups in the repository, by type.",
           [(f'{{type="{t}"}}', sum(b["type"] == t for b in backups))
            for t in ("full", "diff", "incr")])
    runs = state()
    metric("keel_pg_backup_last_status", "1 if the last scheduled backup of a type succeeded.",
           [(f'{{type="{t}"}}', r["status"]) for t, r in sorted(runs.items())])
    metric("keel_pg_backup_last_run_timestamp_seconds", "Time of the last backup attempt.",
           [(f'{{type="{t}"}}', r["last_run"]) for t, r in sorted(runs.items())])
    lag, waiting = archive_lag(config)
    metric("keel_pg_archive_lag_seconds",
           "How long the oldest completed WAL segment has waited to be archived (0: none).",
           [("", round(lag, 1))])
    metric("keel_pg_archive_pending_segments", "Completed WAL segments not archived yet.",
           [("", waiting)])
    try:
        row = psql("select coalesce(extract(epoch from last_archived_time), 0), failed_count, "
                   "coalesce(extract(epoch from last_failed_time), 0) from pg_stat_archiver")
        archived, failed, failed_at = (float(v) for v in row.split("|"))
        metric("keel_pg_archive_last_archived_timestamp_seconds",
               "Time the last WAL segment was archived.", [("", archived)])
        metric("keel_pg_archive_failed_total", "WAL archiving failures since stats reset.",
               [("", failed)])
        metric("keel_pg_archive_last_failed_timestamp_seconds",
               "Time of the last failed archiving attempt (0: none).", [("", failed_at)])
    except subprocess.CalledProcessError:
        pass  # PostgreSQL is down: its own alert says so; the rest is still written.
    metric("keel_pg_backup_metrics_timestamp_seconds", "When these metrics were written.",
           [("", time.time())])
    directory = Path(config["metrics_dir"])
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{METRICS_FILE}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)
    tmp.rename(directory / METRICS_FILE)  # atomic: the exporter never reads half a file


def running(config: dict) -> bool:
    return subprocess.run(["systemctl", "is-active", "--quiet", config["unit"]]).returncode == 0


def backup_set(config: dict, target: float) -> str:
    """The newest backup that ended before the target time (recovery starts there)."""
    candidates = [b for b in info(config).get("backup", []) if b["timestamp"]["stop"] < target]
    if not candidates:
        raise SystemExit("no backup ended before the target time: it cannot be recovered to")
    return candidates[-1]["label"]


def restore(config: dict, target: str) -> int:
    pgdata = Path(config["pgdata"])
    args = ["--delta"]
    if running(config):
        # The state being replaced stays recoverable: a backup of it, before anything stops.
        log("safety backup of the current cluster before the restore")
        if pgbackrest(config, "--type=incr", "--annotation=keel=pre-restore", "backup").returncode:
            raise SystemExit("the safety backup failed: nothing was restored")
    elif pgdata.exists() and any(pgdata.iterdir()):
        aside = pgdata.with_name(f"{pgdata.name}.pre-restore-{int(time.time())}")
        log(f"PostgreSQL is not running: its data directory is kept as {aside}")
        pgdata.rename(aside)
        args = []
    else:
        args = []
    if target != "latest":
        at = datetime.fromisoformat(target.replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise SystemExit(f"{target}: give the time with its zone (e.g. +00)")
        args += ["--type=time", f"--target={at.isoformat(sep=' ')}", "--target-action=promote",
                 f"--set={backup_set(config, at.timestamp())}"]
    # Recovery without hot standby: with it, PostgreSQL refuses to replay WAL written while
    # max_connections (or another such limit) was higher than the restored settings say
    # ("insufficient parameter settings"), e.g. after the data lowered it. Reset once promoted.
    args.append("--recovery-option=hot_standby=off")
    subprocess.run(["systemctl", "stop", config["unit"]], check=True)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    os.chown(pgdata, *_postgres_ids())
    if pgbackrest(config, *args, "restore").returncode:
        raise SystemExit("pgbackrest restore failed (see /var/log/pgbackrest); PostgreSQL is "
                         "stopped")
    # pg_ctl waits for connections, which a long recovery refuses past its timeout: the loop
    # below waits for the promotion instead.
    subprocess.run(["systemctl", "start", config["unit"]])
    for _ in range(600):
        try:
            if psql("select pg_is_in_recovery()") == "f":
                # Back to the settings' hot_standby, in force (nothing left pending a restart).
                psql("alter system reset hot_standby")
                subprocess.run(["systemctl", "restart", config["unit"]], check=True)
                log(f"restored to {target}; PostgreSQL accepts writes")
                write_metrics(config)
                return 0
        except subprocess.CalledProcessError:
            pass
        if subprocess.run(["systemctl", "is-failed", "--quiet", config["unit"]]).returncode == 0:
            raise SystemExit(f"PostgreSQL failed during recovery: see journalctl -u "
                             f"{config['unit']} and /var/log/postgresql")
        time.sleep(1)
    raise SystemExit("PostgreSQL did not finish recovery within 10 minutes")


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def main(argv: list[str]) -> int:
    config = json.loads(CONFIG.read_text())
    if len(argv) == 2 and argv[0] == "backup" and argv[1] in ("full", "diff", "incr"):
        return backup(config, argv[1])
    if argv == ["metrics"]:
        write_metrics(config)
        return 0
    if argv == ["list"]:
        return pgbackrest(config, "info").returncode
    if len(argv) == 2 and argv[0] == "restore":
        return restore(config, argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
