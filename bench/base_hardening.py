"""What base's hardening costs on a host's first converge (deploys/base.py alone, over SSH).

    python bench/base_hardening.py [--prefix bh-] [--out bench/results/base_hardening.json]
                                   [--old-image TAG] [--baseline-root DIR]

Cases, each on a fresh sandbox host:
- `test_image`: keel's current sandbox image (it carries bookworm's security updates and
  base's hardening packages): what every test module pays for base;
- `bare_image` (with --old-image, an image of keel's recipe before the hardening: debootstrap
  bookworm main only): a real fresh host, security upgrades and hardening packages included;
- `before_hardening` (with --baseline-root, a checkout of keel before the hardening, e.g. a
  worktree of main): that base on the test image, the floor the others are compared with.

Each case: first converge, second converge (must change nothing), plan; and the time of the
first integrity check (debsums, AIDE) on the host. Measures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keel import ROOT
from keel.lab import sandbox
from keel.lab.testing import BIN, Harness, Run, ssh

DATA = ROOT / "roles/base/tests/data.py"


def timed_run(inventory: Path, root: Path, dry: bool = False) -> tuple[float, dict]:
    """pyinfra as the harness runs it, from `root` (this checkout or the baseline's)."""
    argv = [str(BIN / "pyinfra"), *(["--dry", "--diff"] if dry else ["-y"]), "--json",
            str(inventory), "deploys/base.py"]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=root, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=1800)
    seconds = round(time.monotonic() - start, 1)
    if proc.returncode:
        raise SystemExit(f"run failed:\n{proc.stderr[-3000:]}")
    return seconds, Run(argv, proc.returncode, proc.stdout, proc.stderr,
                        json.loads(proc.stdout)).changed()


def case(label: str, name: str, image: str | None, root: Path, workdir: Path) -> dict:
    host = sandbox.up([name], fresh=True, image=image, log=lambda m: None)[0]
    try:
        harness = Harness(workdir / label)
        inventory = harness.inventory({"app": [host], "peers": [host]}, data_files=[DATA])
        first, _ = timed_run(inventory, root)
        second, changed = timed_run(inventory, root)
        plan, planned = timed_run(inventory, root, dry=True)
        check = None
        if ssh(host, "test -x /usr/local/sbin/keel-base-metrics").returncode == 0:
            ssh(host, "while systemctl is-active -q keel-base-metrics; do sleep 1; done", 600)
            start = time.monotonic()
            ssh(host, "systemctl start keel-base-metrics", timeout=600)
            check = round(time.monotonic() - start, 1)
        result = {"first": first, "second": second, "plan": plan, "integrity_check": check,
                  "second_changed": changed, "plan_changed": planned}
        print(f"{label}: {result}", file=sys.stderr, flush=True)
        return result
    finally:
        sandbox.down([name])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", default="bh-")
    parser.add_argument("--old-image")
    parser.add_argument("--skip-test-image", action="store_true")
    parser.add_argument("--baseline-root", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/base_hardening.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="keel-bench-base-"))
    cases = [] if args.skip_test_image else [("test_image", "t1", None, ROOT)]
    if args.baseline_root:
        cases.append(("before_hardening", "p1", None, args.baseline_root.resolve()))
    if args.old_image:
        cases.append(("bare_image", "b1", args.old_image, ROOT))
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["load_before"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for label, short, image, root in cases:
        results[label] = case(label, args.prefix + short, image, root, workdir)
        results["load_after"] = os.getloadavg()[0]
        # After each case, so a cut-short run keeps what it measured.
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
