"""Release timings: `keel rollout` per host, with its drain and gate times (median of runs).

    python bench/release.py [--runs 3] [--prefix r-] [--out bench/results/release.json]

Two privileged sandbox hosts, as tests/test_containers.py sets them up but with the agent
alone on each: <prefix>app1 and <prefix>app2 run the agent (the stand-in image, health checks
every 2 s), <prefix>app2's edge serves it from both (one upstream: a release drains each host
in turn) and from itself over loopback (the other: a release of <prefix>app2 surges). Each run
is a good release (a new image version built on the hosts); a last one is a `--canary 50%`
release with the test data's 10 s hold. Each batch's times come from the rollout's own log:
out of service (drain, surge), deploy and gate, back in service, canary hold. Prints a table
and writes JSON; measures only, asserts nothing; removes its hosts at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from keel import ROOT
from keel.core import ca
from keel.lab import sandbox
from keel.lab.testing import BIN, Harness
from keel.lab.testing.plugin import SecretsEnv

sys.path.insert(0, str(ROOT / "tests"))
from containers_data import secret_values, stack  # noqa: E402
from test_containers import EDGE, SERVER_NAME  # noqa: E402

DEPLOY = "tests/deploys/containers.py"
BATCH = re.compile(r"batch (\d+)/\d+: (\S+)")
TOOK = re.compile(r"batch (\d+)/\d+ took (.*)")
LAP = re.compile(r"([a-z ,]+?) ([0-9.]+) s")


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def host_data(version: int, names: list[str]) -> dict:
    agent = stack("agent")
    agent["app_services"]["agent"]["ports"][0]["surge"] = 8001
    agent["app_services"]["agent"]["build"] = {"context": "tests/images/standin",
                                               "args": {"VERSION": str(version)}}
    return {names[0]: agent, names[1]: {**agent, **EDGE}}


def steps(stderr: str) -> dict[str, dict[str, float]]:
    """{host: {step: seconds}} from a rollout's log."""
    hosts, out = {}, {}
    for line in stderr.splitlines():
        if m := BATCH.search(line):
            hosts[m[1]] = m[2]
        elif m := TOOK.search(line):
            out[hosts[m[1]]] = {step.strip(" ,"): float(s) for step, s in LAP.findall(m[2])}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefix", default="r-")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/release.json")
    args = parser.parse_args()
    names = [f"{args.prefix}app1", f"{args.prefix}app2"]
    work = Path(tempfile.mkdtemp(prefix="keel-bench-release-"))
    secrets = SecretsEnv(work)
    for name, value in secret_values(host_data(1, names)[names[0]]).items():
        secrets.set(name, value)
    ca.ensure("sandbox")
    harness = Harness(work)
    try:
        hosts = sandbox.up(names, privileged=True, fresh=True, log=log)
        inventory = lambda version: harness.inventory(  # noqa: E731
            {"app": hosts, "edge": hosts[1:]}, host_data=host_data(version, names))
        start = time.monotonic()
        harness.run(inventory(1), DEPLOY).check()
        log(f"converged in {time.monotonic() - start:.1f} s")
        runs = []
        for version in range(2, args.runs + 3):
            canary = ["--canary", "50%"] if version == args.runs + 2 else []
            start = time.monotonic()
            proc = subprocess.run([str(BIN / "keel"), "rollout", str(inventory(version)),
                                   *canary], cwd=ROOT, capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=1800)
            seconds = round(time.monotonic() - start, 1)
            if proc.returncode != 0:
                raise RuntimeError(f"release {version} failed:\n{proc.stderr[-3000:]}")
            runs.append({"version": version, "canary": bool(canary), "seconds": seconds,
                         "hosts": steps(proc.stderr)})
            log(f"release {version}{' (canary)' if canary else ''}: {seconds} s "
                f"{runs[-1]['hosts']}")
    finally:
        sandbox.down(names)
    plain = [r for r in runs if not r["canary"]]
    summary = {"release": round(statistics.median(r["seconds"] for r in plain), 1), "hosts": {}}
    for host in names:
        laps = [r["hosts"][host] for r in plain]
        summary["hosts"][host] = {step: round(statistics.median(lap[step] for lap in laps), 1)
                                  for step in laps[0]}
    summary["canary"] = next(r for r in runs if r["canary"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"),
                                    "edge_vhost": SERVER_NAME, "summary": summary,
                                    "runs": runs}, indent=2) + "\n")
    print(f"release of 2 hosts (median of {len(plain)}): {summary['release']} s")
    for host, laps in summary["hosts"].items():
        print(f"  {host}: " + ", ".join(f"{step} {s:.1f} s" for step, s in laps.items()))
    print(f"canary release (50%, 10 s hold): {summary['canary']['seconds']} s "
          f"{summary['canary']['hosts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
