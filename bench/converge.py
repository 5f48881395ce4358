"""Converge timings on sandbox hosts: cold, no-op re-converge and dry run (median of N runs).

    python bench/converge.py [--deploy deploys/base.py] [--group app] [--hosts 1,5] [--runs 3]
                             [--prefix bench]
    python bench/converge.py --deploy deploys/site.py --group db      # base, secrets, postgres
    python bench/converge.py --deploy deploys/site.py --group cache   # base, secrets, redis

Prints a table and writes bench/results/converge.json. Measures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from keel import ROOT, sandbox
from keel.testing import Harness


def timed(func, *args, **kwargs) -> float:
    start = time.monotonic()
    func(*args, **kwargs)
    return time.monotonic() - start


def measure(deploy: str, group: str, count: int, runs: int, workdir: Path,
            prefix: str = "bench") -> dict:
    harness = Harness(workdir / f"n{count}")
    names = [f"{prefix}{i}" for i in range(1, count + 1)]
    cold, noop, dry = [], [], []
    for _ in range(runs):
        hosts = sandbox.up(names, fresh=True, log=lambda m: None)
        inventory = harness.inventory({group: hosts})
        cold.append(timed(harness.converge, inventory, deploy))
    for _ in range(runs):
        noop.append(timed(harness.converge, inventory, deploy))
    for _ in range(runs):
        dry.append(timed(harness.converge, inventory, deploy, dry=True, diff=True))
    sandbox.down(names)
    return {"hosts": count, "cold": statistics.median(cold), "noop": statistics.median(noop),
            "dry": statistics.median(dry), "samples": {"cold": cold, "noop": noop, "dry": dry}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deploy", default="deploys/base.py")
    parser.add_argument("--group", default="app", help="inventory group of the hosts")
    parser.add_argument("--prefix", default="bench", help="host names: <prefix>1, <prefix>2, ...")
    parser.add_argument("--hosts", default="1,5")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench/results/converge.json"))
    args = parser.parse_args()
    sandbox.build_image(log=lambda m: None)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(args.deploy, args.group, int(n), args.runs, Path(tmp), args.prefix)
                for n in args.hosts.split(",")]
    print(f"{args.deploy} on group {args.group}, median of {args.runs} runs, {date.today()}, "
          f"{platform.machine()} {os.cpu_count()} cores")
    print(f"{'hosts':>5} {'cold s':>8} {'no-op s':>8} {'dry s':>8}")
    for row in rows:
        print(f"{row['hosts']:>5} {row['cold']:>8.1f} {row['noop']:>8.1f} {row['dry']:>8.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"deploy": args.deploy, "group": args.group,
                               "date": str(date.today()), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
