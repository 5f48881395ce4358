#!/usr/bin/python3
# managed by keel: roles/restic
"""App data backups with restic: one snapshot per set (tag set:<name>) per run.

    keel-restic init                     create the repository if it does not exist
    keel-restic backup [SET...]          back up the sets (all by default): pre_backup hook,
                                         restic backup, then the retention policy (prune)
    keel-restic forget [--dry-run] SET.. apply the retention policy; prints {set: {keep, remove}}
    keel-restic snapshots                list the snapshots
    keel-restic restore SET [SNAPSHOT]   stop the set's units, keep its paths aside, restore
                                         them from SNAPSHOT (latest), start the units
    keel-restic metrics                  write the textfile metrics

Runs as root. Settings: /etc/keel/restic.json; the password (and S3 keys) are files under
/run/keel/secrets, read by restic itself (never on a command line).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path("/etc/keel/restic.json")
STATE = Path("/var/lib/keel/restic.json")
METRICS_FILE = "keel_restic.prom"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def environment(config: dict) -> dict:
    env = {**os.environ, "RESTIC_REPOSITORY": config["repository"],
           "RESTIC_PASSWORD_FILE": config["password_file"], "RESTIC_CACHE_DIR": "/var/cache/restic"}
    if config.get("s3_env"):
        for line in Path(config["s3_env"]).read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                env[key.strip()] = value.strip()
    return env


def restic(config: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["restic", *args], env=environment(config), cwd="/", text=True,
                          **kwargs)


def initialised(config: dict) -> bool:
    return restic(config, "cat", "config", capture_output=True).returncode == 0


def paths(item: dict) -> list[str]:
    out = list(item.get("paths", []))
    for volume in item.get("volumes", []):
        found = subprocess.run([item.get("engine", "podman"), "volume", "inspect", "--format",
                                "{{.Mountpoint}}", volume], capture_output=True, text=True)
        if found.returncode:
            raise RuntimeError(f"volume {volume}: {found.stderr.strip()}")
        out.append(found.stdout.strip())
    return out


def policy(config: dict) -> list[str]:
    keep = config["keep"]
    return ["--group-by", "host,tags", f"--keep-daily={keep['daily']}",
            f"--keep-weekly={keep['weekly']}", f"--keep-monthly={keep['monthly']}"]


def forget(config: dict, names: list[str], dry_run: bool) -> dict:
    out = {}
    for name in names:
        result = restic(config, "forget", "--json", "--tag", f"set:{name}",
                        "--host", socket.gethostname(), *policy(config),
                        *(["--dry-run"] if dry_run else ["--prune"]), capture_output=True)
        if result.returncode:
            raise RuntimeError(f"forget {name}: {result.stderr.strip()}")
        groups = json.loads(result.stdout.splitlines()[0] or "[]") if result.stdout else []
        out[name] = {"keep": sum(len(g.get("keep") or []) for g in groups),
                     "remove": sum(len(g.get("remove") or []) for g in groups)}
    return out


def backup(config: dict, names: list[str]) -> int:
    sets = {s["name"]: s for s in config["sets"]}
    unknown = sorted(set(names) - set(sets))
    if unknown:
        raise SystemExit(f"unknown sets: {', '.join(unknown)}; known: {', '.join(sorted(sets))}")
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    failed = 0
    for name in names or sorted(sets):
        item, started = sets[name], time.time()
        record = state.setdefault(name, {})
        record["last_run"] = started
        try:
            if item.get("pre_backup"):
                subprocess.run(["sh", "-c", item["pre_backup"]], check=True, cwd="/")
            result = restic(config, "backup", "--json", "--tag", f"set:{name}", "--host",
                            socket.gethostname(), *paths(item), capture_output=True)
            if result.returncode:
                raise RuntimeError(result.stderr.strip())
            summary = [json.loads(line) for line in result.stdout.splitlines()
                       if '"summary"' in line][-1]
            forget(config, [name], dry_run=False)
            record.update(status=1, last_success=time.time(), duration=time.time() - started,
                          size=summary.get("total_bytes_processed", 0))
            log(f"{name}: snapshot {summary.get('snapshot_id', '')[:8]} "
                f"({summary.get('total_bytes_processed', 0)} bytes)")
        except (RuntimeError, subprocess.CalledProcessError, IndexError) as exc:
            failed += 1
            record.update(status=0, duration=time.time() - started)
            log(f"{name}: backup FAILED: {exc}")
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=1))
    write_metrics(config, state)
    return 1 if failed else 0


def write_metrics(config: dict, state: dict | None = None) -> None:
    if state is None:
        state = json.loads(STATE.read_text()) if STATE.exists() else {}
    names = [s["name"] for s in config["sets"]]
    metrics = {
        "keel_restic_last_success_timestamp_seconds":
            ("Time of the last successful backup of a set.", "last_success"),
        "keel_restic_last_run_timestamp_seconds": ("Time of the last backup attempt.", "last_run"),
        "keel_restic_last_status": ("1 if the last backup of a set succeeded, else 0.", "status"),
        "keel_restic_last_size_bytes": ("Bytes the last backup of a set read.", "size"),
        "keel_restic_last_duration_seconds": ("How long the last backup took.", "duration"),
    }
    lines = []
    for metric, (help_text, field) in metrics.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [f'{metric}{{set="{name}"}} {state[name][field]}' for name in names
                  if field in state.get(name, {})]
    directory = Path(config["metrics_dir"])
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{METRICS_FILE}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)
    tmp.rename(directory / METRICS_FILE)


def restore(config: dict, name: str, snapshot: str) -> int:
    sets = {s["name"]: s for s in config["sets"]}
    if name not in sets:
        raise SystemExit(f"unknown set {name}; known: {', '.join(sorted(sets))}")
    item = sets[name]
    for volume in item.get("volumes", []):  # a destroyed volume is made again, empty
        engine = item.get("engine", "podman")
        if subprocess.run([engine, "volume", "exists" if engine == "podman" else "inspect",
                           volume], capture_output=True).returncode:
            subprocess.run([engine, "volume", "create", "--label", "keel.critical=true", volume],
                           check=True, capture_output=True)
    targets = paths(item)
    found = restic(config, "snapshots", "--json", "--tag", f"set:{name}", "--host",
                   socket.gethostname(), *([] if snapshot == "latest" else [snapshot]),
                   capture_output=True)
    snapshots = json.loads(found.stdout or "[]") if found.returncode == 0 else []
    if not snapshots:
        raise SystemExit(f"no snapshot {snapshot} of set {name}: nothing was changed")
    chosen = snapshots[-1]
    for unit in item.get("units", []):
        subprocess.run(["systemctl", "stop", unit], check=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for path in targets:
        p = Path(path)
        if p.exists():
            aside = p.with_name(f"{p.name}.pre-restore-{stamp}")
            p.rename(aside)
            log(f"{path}: current contents kept as {aside}")
    # The snapshot holds the set's paths only: restored in place.
    result = restic(config, "restore", chosen["id"], "--target", "/")
    for unit in item.get("units", []):
        subprocess.run(["systemctl", "start", unit], check=True)
    if result.returncode:
        raise SystemExit(f"restic restore of {name} failed")
    log(f"{name}: restored snapshot {chosen['short_id']} of {chosen['time']}")
    return 0


def main(argv: list[str]) -> int:
    config = json.loads(CONFIG.read_text())
    if argv == ["init"]:
        if initialised(config):
            return 0
        return restic(config, "init").returncode
    if argv == ["initialised"]:
        return 0 if initialised(config) else 1
    if argv[:1] == ["backup"]:
        return backup(config, argv[1:])
    if argv[:1] == ["forget"]:
        dry = "--dry-run" in argv
        names = [a for a in argv[1:] if a != "--dry-run"] or [s["name"] for s in config["sets"]]
        print(json.dumps(forget(config, names, dry)))
        return 0
    if argv == ["snapshots"]:
        return restic(config, "snapshots").returncode
    if argv == ["metrics"]:
        write_metrics(config)
        return 0
    if len(argv) in (2, 3) and argv[0] == "restore":
        return restore(config, argv[1], argv[2] if len(argv) == 3 else "latest")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
