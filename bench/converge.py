"""Converge timings of the full site on sandbox hosts over SSH (median of repeated runs).

    python bench/converge.py [--runs 3] [--cold-runs 2] [--sizes 1,5,10,20] [--prefix b-]
                             [--skip-cold] [--out bench/results/converge.json]

1. cold: deploys/site.py on fresh hosts of the prod topology (5 hosts), next to the apt floor:
   apt-get alone installing the same packages on equally fresh hosts;
2. no-op: the site re-converged on 1 all-in-one host, on the prod topology, and with the app
   role replicated to 10 and 20 hosts;
3. dry: the plan (`--dry --diff`) on those converged fleets;
4. per role: a no-op run on the all-in-one host traced (bench/trace.py): seconds and remote
   commands per role.

Prints a table and writes JSON. Measures only; asserts nothing. Hosts are <prefix>app1, ...
(prod), <prefix>n01, ... (app replicas), <prefix>aio1 and <prefix>floor1, ...; the bench
removes them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from keel import ROOT
from keel.lab import sandbox
from keel.lab.testing import BIN, Harness, ssh

SITE = "deploys/site.py"
# The prod topology: role groups of each host; app hosts run containers (privileged).
PROD = {"app1": ("app", "edge"), "app2": ("app", "edge"), "db1": ("db",),
        "cache1": ("cache",), "mon1": ("mon",)}
ALL_GROUPS = ("app", "edge", "db", "cache", "mon")
TARGETS = {"noop_1": 5.0, "scale_20": 2.0, "cold_vs_floor": 1.2, "dry_vs_noop": 1.5}


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def timed(func, *args, **kwargs) -> tuple[float, object]:
    start = time.monotonic()
    result = func(*args, **kwargs)
    return time.monotonic() - start, result


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.prefix = args.prefix
        self.harness = Harness(workdir)
        self.workdir = workdir
        self.started: set[str] = set()
        self.snapshot = ""
        self._secrets(workdir)

    def _secrets(self, workdir: Path) -> None:
        """A throwaway sandbox secrets dir and identity (as the tests use): never the
        developer's own."""
        from keel.core import store

        os.environ["KEEL_SECRETS_DIR"] = str(workdir / "secrets")
        os.environ["KEEL_AGE_KEY_FILE"] = str(workdir / "age/keys.txt")
        shutil.copytree(ROOT / "secrets", workdir / "secrets",
                        ignore=shutil.ignore_patterns("sandbox.*"))
        _, public, _ = store.create_identity()
        store.set_recipients("sandbox", [public])

    # --- hosts and inventories ---------------------------------------------------------

    def up(self, names: list[str], privileged: bool, image: str | None = None
           ) -> list[sandbox.Host]:
        names = [self.prefix + n for n in names]
        self.started.update(names)
        return sandbox.up(names, privileged=privileged, fresh=True, log=log, image=image)

    def replicas(self, template: sandbox.Host, names: list[str]) -> list[sandbox.Host]:
        """App replicas started from a snapshot of a converged app host: converging 15 fresh
        ones (each downloading the Claude CLI, building an image) would take most of an hour
        here. The converge that follows makes each one itself (hostname, peers, identity)."""
        if not self.snapshot:
            self.snapshot = f"localhost/keel-bench-app:{self.prefix.strip('-') or 'bench'}"
            sandbox.podman("commit", "--pause=false", sandbox.container_name(template.name),
                           self.snapshot)
        # Five at a time: fifteen privileged hosts booting at once overran the boot timeout.
        return [host for i in range(0, len(names), 5)
                for host in self.up(names[i:i + 5], privileged=True, image=self.snapshot)]

    def prod(self) -> dict[str, sandbox.Host]:
        app = self.up([n for n, g in PROD.items() if "app" in g], privileged=True)
        rest = self.up([n for n, g in PROD.items() if "app" not in g], privileged=False)
        return {h.name: h for h in app + rest}

    def inventory(self, hosts: dict[str, sandbox.Host], name: str) -> Path:
        groups: dict[str, list[sandbox.Host]] = {}
        for host_name, host in hosts.items():
            for group in self.groups_of(host_name):
                groups.setdefault(group, []).append(host)
        path = self.harness.inventory(groups, name=name)
        subprocess.run([str(BIN / "keel"), "secrets", "ensure", "sandbox", str(path)],
                       cwd=ROOT, check=True, capture_output=True)
        return path

    def groups_of(self, host_name: str) -> tuple[str, ...]:
        short = host_name.removeprefix(self.prefix)
        if short.startswith("aio"):
            return ALL_GROUPS
        if short.startswith("n"):  # app replicas
            return PROD["app1"]
        return PROD[short]

    def converge(self, inventory: Path) -> float:
        seconds, run = timed(self.harness.run, inventory, SITE)
        run.check()
        return round(seconds, 2)

    def repeat(self, inventory: Path, label: str) -> dict:
        """No-op re-converges then plans on a converged fleet; each must change nothing."""
        noop, dry = [], []
        for _ in range(self.args.runs):
            seconds, run = timed(self.harness.run, inventory, SITE)
            run.check()
            if run.changed():
                log(f"{label}: a no-op run changed {run.changed()}")
            noop.append(round(seconds, 2))
        for _ in range(self.args.runs):
            seconds, run = timed(self.harness.run, inventory, SITE, dry=True, diff=True)
            run.check()
            dry.append(round(seconds, 2))
        log(f"{label}: no-op {noop}, dry {dry}")
        return {"noop": median(noop), "dry": median(dry), "samples": {"noop": noop, "dry": dry}}

    # --- measures ----------------------------------------------------------------------

    def cold(self) -> tuple[dict, dict[str, sandbox.Host], Path]:
        samples = []
        for run in range(self.args.cold_runs):
            hosts = self.prod()
            inventory = self.inventory(hosts, "prod")
            seconds, result = timed(self.harness.run, inventory, SITE)
            result.check()
            samples.append(round(seconds, 2))
            log(f"cold converge {run + 1}: {seconds:.1f} s")
        floor = self.apt_floor(hosts)
        return {"cold": median(samples), "samples": samples, **floor}, hosts, inventory

    def apt_floor(self, converged: dict[str, sandbox.Host]) -> dict:
        """apt-get alone installing, on equally fresh hosts, every package the site left on
        each converged host that the image lacks, with the same apt sources."""
        baseline = set(self._packages(self._floor_hosts(["app1"])[0]))
        wanted = {name: sorted(set(self._packages(host)) - baseline)
                  for name, host in converged.items()}
        sources = {name: ssh(host, "cat /etc/apt/sources.list.d/debian.sources").stdout
                   for name, host in converged.items()}
        samples = []
        # The converge ran with no other host busy; the floor must too. Converged hosts are
        # not idle (AIDE's first baseline, scrapes, containers): frozen while the floor runs.
        frozen = [sandbox.container_name(name) for name in converged]
        sandbox.podman("pause", *frozen)
        try:
            for run in range(self.args.cold_runs):
                fresh = dict(zip(converged, self._floor_hosts(list(PROD)), strict=True))
                start = time.monotonic()
                with ThreadPoolExecutor(len(fresh)) as pool:
                    list(pool.map(self._install, fresh.values(), (wanted[n] for n in fresh),
                                  (sources[n] for n in fresh)))
                samples.append(round(time.monotonic() - start, 2))
                log(f"apt floor {run + 1}: {samples[-1]:.1f} s")
                self.down([h.name for h in fresh.values()])
        finally:
            sandbox.podman("unpause", *frozen)
        return {"apt_floor": median(samples), "apt_floor_samples": samples,
                "apt_packages": {n.removeprefix(self.prefix): len(p) for n, p in wanted.items()}}

    @staticmethod
    def _install(host: sandbox.Host, packages: list[str], sources: str) -> None:
        # The site's apt sources first (the updates and security suites change versions).
        put = subprocess.run(host.ssh_argv("rm -f /etc/apt/sources.list && "
                                           "cat > /etc/apt/sources.list.d/debian.sources"),
                             input=sources, text=True, capture_output=True)
        if put.returncode != 0:
            raise RuntimeError(f"{host.name}: {put.stderr}")
        proc = ssh(host, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install "
                   "-y -qq --no-install-recommends " + " ".join(packages), timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"{host.name}: apt-get failed: {proc.stderr[-2000:]}")

    def _floor_hosts(self, names: list[str]) -> list[sandbox.Host]:
        return self.up([f"floor-{n}" for n in names], privileged=False)

    @staticmethod
    def _packages(host: sandbox.Host) -> list[str]:
        proc = ssh(host, "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n'")
        return [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ii")]

    def trace(self, inventory: Path) -> dict:
        """Seconds and remote commands per role in one traced no-op run."""
        out = self.workdir / "trace.json"
        argv = [str(BIN / "python"), str(ROOT / "bench/trace.py"), str(out), "-y",
                str(inventory), SITE]
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)
        return json.loads(out.read_text())

    def down(self, names: list[str]) -> None:
        sandbox.down(names)
        self.started.difference_update(names)


def per_role(trace: dict) -> list[dict]:
    (host_roles,) = trace["hosts"].values()
    rows = [{"role": role, "seconds": round(e["prepare_s"] + e["execute_s"], 2),
             "prepare_s": e["prepare_s"], "execute_s": e["execute_s"],
             "remote_s": e["remote_s"], "commands": e["commands"] + e["uploads"]}
            for role, e in host_roles.items()]
    return sorted(rows, key=lambda r: -r["seconds"])


def report(result: dict) -> str:
    lines = [f"keel site bench, {result['date']}, {result['machine']}",
             f"median of {result['runs']} runs (cold and apt floor: {result['cold_runs']})", ""]
    if "cold" in result:
        c = result["cold"]
        lines += [f"cold converge, prod topology (5 hosts): {c['cold']:.1f} s; "
                  f"apt floor: {c['apt_floor']:.1f} s; ratio {c['cold'] / c['apt_floor']:.2f} "
                  f"(target <= {TARGETS['cold_vs_floor']})", ""]
    lines.append(f"{'hosts':>5} {'no-op s':>8} {'dry s':>8} {'dry/no-op':>10} {'vs 1 host':>10}")
    sizes = result["sizes"]
    one = sizes.get("1", {}).get("noop")
    for size, row in sizes.items():
        scale = f"{row['noop'] / one:.2f}" if one else "-"
        lines.append(f"{size:>5} {row['noop']:>8.1f} {row['dry']:>8.1f} "
                     f"{row['dry'] / row['noop']:>10.2f} {scale:>10}")
    lines.append(f"targets: no-op 1 host <= {TARGETS['noop_1']} s; 20 hosts <= "
                 f"{TARGETS['scale_20']}x 1 host; dry <= {TARGETS['dry_vs_noop']}x no-op")
    if result.get("roles"):
        lines += ["", "no-op run on the all-in-one host, per role:",
                  f"{'role':<20} {'s':>6} {'prepare s':>10} {'execute s':>10} {'commands':>9}"]
        for r in result["roles"]:
            lines.append(f"{r['role']:<20} {r['seconds']:>6.2f} {r['prepare_s']:>10.2f} "
                         f"{r['execute_s']:>10.2f} {r['commands']:>9}")
        rest = result["trace_total_s"] - sum(r["seconds"] for r in result["roles"])
        lines.append(f"{'(startup, data)':<20} {rest:>6.2f}")
        lines.append(f"traced run: {result['trace_total_s']:.1f} s, "
                     f"{sum(r['commands'] for r in result['roles'])} remote commands")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="no-op and dry runs per size")
    parser.add_argument("--cold-runs", type=int, default=2, help="cold converges and apt floors")
    parser.add_argument("--sizes", default="1,5,10,20", help="fleet sizes (1 is all-in-one)")
    parser.add_argument("--prefix", default="b-", help="prefix of every host name")
    parser.add_argument("--skip-cold", action="store_true", help="no cold converge or floor")
    parser.add_argument("--keep", action="store_true", help="leave the hosts running")
    parser.add_argument("--out", default=str(ROOT / "bench/results/converge.json"))
    parser.add_argument("--report", action="store_true", help="only print the table of --out")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(Path(args.out).read_text())))
        return
    sizes = [int(n) for n in args.sizes.split(",")]
    result: dict = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "machine": f"{os.cpu_count()} cores, "
                               f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30}"
                               " GiB", "runs": args.runs, "cold_runs": args.cold_runs,
                    "sizes": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every measure: a long bench cut short keeps what it has
        # The machine's 1-minute load after each measure: others' work shares these cores.
        result.setdefault("loadavg", []).append(round(os.getloadavg()[0], 1))
        out.write_text(json.dumps(result, indent=2) + "\n")

    sandbox.build_image(log=log)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            run_all(bench, sizes, result, save)
        finally:
            if not args.keep:
                bench.down(sorted(bench.started))
                if bench.snapshot:
                    sandbox.podman("rmi", bench.snapshot, check=False)
    result["bench_minutes"] = round((time.monotonic() - started) / 60, 1)
    print(report(result))
    save()
    log(f"wrote {out} ({result['bench_minutes']} min)")


def run_all(bench: Bench, sizes: list[int], result: dict, save) -> None:
    if 1 in sizes:
        (aio,) = bench.up(["aio1"], privileged=True)
        inventory = bench.inventory({aio.name: aio}, "aio")
        log(f"all-in-one converge: {bench.converge(inventory):.1f} s")
        result["sizes"]["1"] = bench.repeat(inventory, "1 host")
        trace = bench.trace(inventory)
        result["roles"] = per_role(trace)
        result["trace_total_s"] = trace["total_s"]
        save()
        bench.down([aio.name])
    fleet = [n for n in sizes if n > 1]
    if not fleet:
        return
    if bench.args.skip_cold:
        hosts = bench.prod()
        inventory = bench.inventory(hosts, "prod")
        log(f"prod converge: {bench.converge(inventory):.1f} s")
    else:
        result["cold"], hosts, inventory = bench.cold()
        save()
    for size in fleet:
        if size > len(hosts):
            have = len(hosts) - len(PROD)
            extra = bench.replicas(hosts[bench.prefix + "app1"],
                                   [f"n{i:02d}" for i in range(have + 1, size - len(PROD) + 1)])
            hosts.update({h.name: h for h in extra})
            inventory = bench.inventory(hosts, f"fleet{size}")
            log(f"{size} hosts converge: {bench.converge(inventory):.1f} s")
        result["sizes"][str(size)] = bench.repeat(inventory, f"{size} hosts")
        save()


if __name__ == "__main__":
    main()
