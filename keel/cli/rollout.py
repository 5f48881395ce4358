"""Releases and status of the app role's services, across an inventory's app hosts.

pyinfra runs each operation on all hosts before the next one, and `--serial` only orders
hosts within an operation, so neither stops a release at the first bad host. `rollout` takes
one batch of hosts at a time (`--limit`): each edge in front of them drains them (keel-edge),
the app deploy runs, and the gate (every service running and healthy, and each upstream's
smoke request from its edge) decides. A host that passes goes back in service; a host that
fails is rolled back (deploys/app_rollback.py), gated again and put back in service, and the
release stops: later hosts keep the version they run. `--canary` releases one host first,
gives it a share of each upstream's requests (nginx weights) for the upstream's hold time,
and promotes it or rolls it back by its 5xx rate (counted from the edge's status log) and
health. `--rollback` does the same with deploys/app_rollback.py, which returns the services
that run the data's current definition to the one they replaced. Every run begins by
repairing what a killed run left on the edges (`_reconcile`).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel import ROOT
from keel.errors import KeelError

BIN = Path(sys.executable).parent
STATUS_FACT = "roles.app.facts.Status"
RELEASES_FACT = "roles.app.facts.Releases"
ROLLBACK = "deploys/app_rollback.py"
SURGE, SURGE_END = "deploys/app_surge.py", "deploys/app_surge_end.py"
EDGE_TOOL = "/usr/local/sbin/keel-edge"  # installed by the edge role
GATE_SETTLE = 30
CANARY_POLL = 2  # seconds between reads of a canary's health


def group_hosts(inventory: Path, group: str) -> list[str]:
    """Host names of one group, in inventory order."""
    from keel.core.inventory import load

    hosts = [h.name for h in load(inventory).hosts if group in h.groups]
    if not hosts:
        raise KeelError(f"{inventory.name}: group '{group}' has no hosts")
    return hosts


def _pyinfra(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pyinfra"), *args], cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def _fact(inventory: Path, fact: str, limit, *args: str) -> dict[str, Any]:
    argv = ["--json", *_limit(limit), str(inventory), "fact", fact, *args]
    proc = _pyinfra(*argv)
    if proc.returncode != 0 or not proc.stdout.strip().startswith("{"):
        raise KeelError(f"reading {fact} failed:\n{proc.stderr[-2000:]}")
    # One fact per run: its key also names its arguments.
    return next(iter(json.loads(proc.stdout).values()), {})


def status(inventory: Path, limit: list[str] = ()) -> dict[str, dict]:
    """{host: {service: {image, state, unit, health, restarts, ...}}}, read only."""
    return _fact(inventory, STATUS_FACT, limit)


def releases(inventory: Path, limit: list[str] = ()) -> dict[str, dict]:
    """{host: {"current"|"previous": {config, time, images}}}: what each app host recorded."""
    from keel.core.inventory import load
    from keel.core.roles import role

    dirs: dict[str, list[str]] = {}
    for h in load(inventory).hosts:
        if "app" in h.roles and (not limit or h.name in limit):
            dirs.setdefault(role("app").validate(h.values).app_state_dir, []).append(h.name)
    out = {}
    for state_dir, names in dirs.items():
        out |= _fact(inventory, RELEASES_FACT, names, f"state_dir={state_dir}")
    return out


def status_table(facts: dict[str, dict]) -> str:
    rows = [["HOST", "SERVICE", "IMAGE", "STATE", "HEALTH", "RESTARTS"]]
    for hostname, services in sorted(facts.items()):
        if not services:
            rows.append([hostname, "-", "-", "-", "-", "-"])
        for name, s in sorted((services or {}).items()):
            rows.append([hostname, name, s["image"], f"{s['state']} ({s['unit']})",
                         s["health"], str(s["restarts"])])
    return _table(rows)


def releases_table(facts: dict[str, dict]) -> str:
    """Each host's current and previous release: config hash, when, image ids."""
    rows = [["HOST", "RELEASE", "CONFIG", "RECORDED", "IMAGES"]]
    for hostname, records in sorted(facts.items()):
        for which in ("current", "previous"):
            r = (records or {}).get(which)
            if not r:
                rows.append([hostname, which, "-", "-", "-"])
                continue
            images = ", ".join(f"{s}={i.split()[-1][:12]}" for s, i in sorted(r["images"].items()))
            rows.append([hostname, which, r["config"], r["time"], images])
    return _table(rows)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def unhealthy(services: dict) -> list[str]:
    return sorted(name for name, s in (services or {}).items()
                  if s["state"] != "running" or s["health"] not in ("healthy", "-"))


@dataclass(frozen=True)
class Route:
    """One way requests reach an app host: a server of an edge host's upstream."""

    edge: str
    upstream: str
    host: str
    address: str  # as the edge reaches the host
    port: int
    drain_timeout: int
    smoke: Any  # the upstream's smoke request (roles/edge: Smoke), or None
    canary: Any  # the upstream's canary hold and thresholds (roles/edge: Canary)
    service: str | None = None  # the host's app service publishing the port ...
    surge: int | None = None  # ... and the port its surge copy publishes instead, if any

    @property
    def server(self) -> str:
        return f"{self.upstream}:{self.host}"

    def url(self, port: int | None = None) -> str:
        return f"http://{self.address}:{port or self.port}"


def routes(inventory: Path) -> list[Route]:
    """Every edge upstream's servers, from inventory data (what the edge role renders)."""
    from keel.core.inventory import load
    from keel.core.roles import declarations, role

    env = load(inventory)
    received = declarations((h.name, h.values, h.roles) for h in env.hosts)
    published = {}  # (host, port) -> (service, surge port)
    for h in env.hosts:
        if "app" in h.roles:
            app = role("app").validate(h.values, received.get((h.name, "app"), ()))
            for name, svc in app.app_services.items():
                published |= {(h.name, p.port): (name, p.surge) for p in svc.ports}
    out = []
    for edge in env.hosts:
        if "edge" not in edge.roles:
            continue
        settings = role("edge").validate(edge.values, received.get((edge.name, "edge"), ()))
        for name, up in settings.edge_upstreams.items():
            members = [(h.name, h.values.get("keel_address")) for h in env.hosts
                       if up.group in h.groups]
            out += [Route(edge.name, name, host, address, up.port, up.drain_timeout, up.smoke,
                          up.canary, *published.get((host, up.port), (None, None)))
                    for host, address in up.servers(edge.name, members)]
    return out


@dataclass
class Result:
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)  # failed, then back on the previous
    untouched: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed


def rollout(inventory: Path, *, group: str = "app", batch: int = 1, rollback: bool = False,
            canary: str | None = None, log=print) -> Result:
    deploy = ROLLBACK if rollback else "deploys/app.py"
    hosts = group_hosts(inventory, group)
    paths = routes(inventory)
    if canary and rollback:
        raise KeelError("--canary applies to releases, not to --rollback")
    pick, share = _canary(canary, hosts, paths) if canary else (None, None)
    result = Result()
    rest = [h for h in hosts if h != pick]
    batches = ([[pick]] if pick else []) + [rest[i:i + batch] for i in range(0, len(rest), batch)]
    _reconcile(inventory, paths, log)
    for number, members in enumerate(batches, 1):
        log(f"batch {number}/{len(batches)}: {', '.join(members)}")
        clock = _Clock()
        drained = _drain(inventory, paths, members, log)
        surged, failed = ([], {}) if rollback else _surge(inventory, paths, members, log)
        clock.lap("out of service")
        back: dict[str, str] = {}
        rolled: list[str] = []
        if not failed:
            failed = _gate(inventory, members, paths, _pyinfra(
                *_limit(members), "-y", "--json", str(inventory), deploy))
            if failed and not rollback:
                log(f"gate failed on {', '.join(failed)}: rolling back")
                back = _gate(inventory, list(failed), paths, _pyinfra(
                    *_limit(failed), "-y", "--json", str(inventory), ROLLBACK))
                rolled = [h for h in failed if h not in back]
        clock.lap("deploy and gate" + (" and rollback" if rolled or back else ""))
        in_service = [r for r in drained + surged
                      if r.host not in back and (r.host not in failed or not rollback)]
        back_home = [r for r in surged if r in in_service]
        if back_home:  # the services run the new release on their own port: copies stop
            _switch(inventory, back_home, log, back_from_surge=True)
            _pyinfra(*_limit(sorted({r.host for r in back_home})), "-y", str(inventory),
                     SURGE_END)
        serving = [r for r in drained if r in in_service]
        weighted = serving if pick in members and not failed else []
        if weighted and share is not None:
            _weigh(inventory, paths, weighted, share, log)
        marks = _marks(inventory, weighted) if weighted else {}
        _undrain(inventory, serving, log)
        clock.lap("back in service")
        if weighted:
            if why := _hold(inventory, pick, weighted, marks, log):
                failed, rolled, back = {pick: why}, *_canary_back(inventory, paths, weighted,
                                                                   log)
            elif share is not None:
                _weigh(inventory, paths, weighted, None, log)
            clock.lap("canary hold" + (" and rollback" if failed else ", promoted"))
        log(f"batch {number}/{len(batches)} took {clock}")
        if failed:
            result.failed = list(failed)
            result.rolled_back = rolled
            result.done += [m for m in members if m not in failed]
            result.untouched = [h for b in batches[number:] for h in b]
            result.reason = "".join(f"{h}: {why}\n" for h, why in failed.items())
            result.reason += "".join(
                f"{h}: rolled back to its previous release, back in service\n"
                for h in result.rolled_back)
            result.reason += "".join(
                f"{h}: the rollback failed its gate too ({why}); left out of service\n"
                for h, why in back.items())
            log(f"stopped: {', '.join(failed)} failed; not updated: "
                f"{', '.join(result.untouched) or 'none'}")
            return result
        result.done += members
    return result


def _canary(value: str, hosts: list[str], paths: list[Route]) -> tuple[str, int | None]:
    """(host, percent) of `--canary N%` (the group's first host) or `--canary HOST` (its
    share as it is)."""
    share = None
    if value.endswith("%"):
        if not value[:-1].isdigit() or not 1 <= int(value[:-1]) <= 99:
            raise KeelError(f"--canary {value}: expected a share from 1% to 99%, or a host")
        share, host = int(value[:-1]), hosts[0]
    elif value in hosts:
        host = value
    else:
        raise KeelError(f"--canary {value}: not a host of the group ({', '.join(hosts)}) "
                        "nor a share such as 10%")
    sole = _sole(paths, [host])
    if not [r for r in paths if r.host == host and r not in sole]:
        raise KeelError(f"--canary: no edge upstream has {host} beside another server, so no "
                        "share of traffic can be given to it")
    return host, share


def _weigh(inventory: Path, paths: list[Route], canaries: list[Route], share: int | None,
           log) -> None:
    """Each upstream gives its canary server `share` percent of its requests (nginx weights:
    the canary share*(n-1), the others 100-share), or back to equal weights (None)."""
    for edge in sorted({r.edge for r in canaries}):
        targets = []
        for route in [r for r in canaries if r.edge == edge]:
            peers = [r for r in paths if (r.edge, r.upstream) == (edge, route.upstream)
                     and r.host != route.host]
            mine, theirs = (share * len(peers), 100 - share) if share else (1, 1)
            unit = math.gcd(mine, theirs)
            targets += [f"{route.server}:{mine // unit}"]
            targets += [f"{r.server}:{theirs // unit}" for r in peers]
        proc = _edge(inventory, edge, "weight", *targets)
        if proc.returncode != 0:
            raise KeelError(f"{edge}: setting weights {', '.join(targets)} failed:\n"
                            f"{_said(proc)}")
        log(f"{edge}: weights {', '.join(targets)}")


def _marks(inventory: Path, canaries: list[Route]) -> dict[str, str]:
    """{edge: where its status log ends}: the canary's responses are counted from here."""
    return {edge: (_output(_edge(inventory, edge, "mark"), edge) or ["0"])[-1]
            for edge in sorted({r.edge for r in canaries})}


def _hold(inventory: Path, host: str, canaries: list[Route], marks: dict[str, str],
          log) -> str:
    """Watch the canary for its upstreams' hold time: the check it failed, or "" once the
    hold passed. Each edge watches its 5xx rate itself (`keel-edge watch`, every second) and
    drains it on a breach without waiting for this side; its health is read here."""
    hold = max(r.canary.hold for r in canaries)
    log(f"canary {host}: holding for {hold} s")
    watches = {route: subprocess.Popen(
        [str(BIN / "pyinfra"), *_edge_args(
            inventory, route.edge, "watch", marks[route.edge], str(hold),
            str(route.canary.max_5xx_rate), route.server, f"{route.address}:{route.port}")],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for route in canaries}
    try:
        while True:
            for route, watch in watches.items():
                if watch.poll():
                    said = _said(subprocess.CompletedProcess(watch.args, watch.returncode,
                                                             *watch.communicate()))
                    if " answered " not in said:  # the watch itself failed
                        return f"canary watch on {route.edge} failed: {said or 'no output'}"
                    return (f"canary 5xx rate through {route.edge}'s upstream {route.upstream} "
                            f"is over max_5xx_rate {route.canary.max_5xx_rate:.1%}: {said}")
            if all(watch.poll() is not None for watch in watches.values()):
                log(f"canary {host}: within its thresholds for {hold} s, promoted")
                return ""
            if bad := unhealthy(status(inventory, [host]).get(host, {})):
                return f"canary health: {', '.join(bad)}"
            time.sleep(CANARY_POLL)
    finally:
        for watch in watches.values():
            if watch.poll() is None:
                watch.kill()
            watch.communicate()


def _canary_back(inventory: Path, paths: list[Route], canaries: list[Route],
                 log) -> tuple[list[str], dict[str, str]]:
    """A canary that failed its hold: out of service, rolled back, gated, weights equal
    again, back in service. Returns (rolled back, {host: why its rollback failed})."""
    host = canaries[0].host
    log(f"canary {host} failed: rolling back")
    _drain(inventory, paths, [host], log)
    back = _gate(inventory, [host], paths, _pyinfra(
        "--limit", host, "-y", "--json", str(inventory), ROLLBACK))
    _weigh(inventory, paths, canaries, None, log)
    if not back:
        _undrain(inventory, canaries, log)
    return ([] if back else [host]), back


def _reconcile(inventory: Path, paths: list[Route], log) -> None:
    """Repair what a killed run left on each edge (its live config records it): canary
    weights go back to equal; a drained server, or one switched to its surge port, that
    passes the gate goes back in service (a surge copy stops). One that fails stays out of
    service until its batch."""
    held: dict[Route, list[str]] = {}
    for edge in sorted({r.edge for r in paths}):
        proc = _edge(inventory, edge, "servers")
        if proc.returncode != 0:
            if "usage: keel-edge" in proc.stdout + proc.stderr:  # an edge keel has not updated
                raise KeelError(f"{edge}: its keel-edge has no `servers` command; converge the "
                                f"edge first: pyinfra {inventory} deploys/edge.py --limit {edge}")
            raise KeelError(f"{edge}: reading the upstreams' servers failed:\n{_said(proc)}")
        live = {(f[0], f[1]): f[2:] for f in map(str.split, _output(proc, edge))
                if len(f) >= 3}
        for route in [r for r in paths if r.edge == edge]:
            address, *flags = live.get((route.upstream, route.host), [route.url()[7:]])
            marks = [f for f in flags if f.startswith("weight=")]
            marks += ["down"] if "down" in flags else []
            if not address.endswith(f":{route.port}"):
                marks.append(f"port {address.rsplit(':', 1)[1]}")
            if marks:
                held[route] = marks
    if not held:
        return
    for route, marks in held.items():
        log(f"{route.edge}: {route.server} left {', '.join(marks)} by an earlier run")
    _weigh(inventory, paths, [r for r, m in held.items() if m[0].startswith("weight=")], None,
           log)
    waiting = [r for r, m in held.items() if any(not x.startswith("weight=") for x in m)]
    failed = _gate(inventory, sorted({r.host for r in waiting}), paths)
    fine = [r for r in waiting if r.host not in failed]
    switched = [r for r in fine if any(m.startswith("port ") for m in held[r])]
    if switched:
        _switch(inventory, switched, log, back_from_surge=True)
        _pyinfra(*_limit(sorted({r.host for r in switched})), "-y", str(inventory), SURGE_END)
    _undrain(inventory, [r for r in fine if "down" in held[r]], log)
    for host, why in failed.items():
        log(f"{host}: stays out of service until its batch ({why})")


class _Clock:
    """How long each step of a batch took, for the log."""

    def __init__(self):
        self.start, self.laps = time.monotonic(), []

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{step} {now - self.start:.1f} s")
        self.start = now

    def __str__(self) -> str:
        return ", ".join(self.laps)


def _limit(hosts) -> list[str]:
    return [arg for name in hosts for arg in ("--limit", name)]


def _edge_args(inventory: Path, edge: str, *argv: str) -> tuple[str, ...]:
    """pyinfra's arguments that run keel-edge on an edge host."""
    return (str(inventory), "--limit", edge, "exec", "--", EDGE_TOOL, *argv)


def _edge(inventory: Path, edge: str, *argv: str) -> subprocess.CompletedProcess:
    return _pyinfra(*_edge_args(inventory, edge, *argv))


def _drain(inventory: Path, paths: list[Route], members: list[str], log) -> list[Route]:
    """Each edge stops sending the batch new requests and waits for those in flight. An
    upstream whose every server is in the batch is not drained (it would refuse all)."""
    drained = []
    for route in paths:
        if route.host not in members:
            continue
        others = [r for r in paths if (r.edge, r.upstream) == (route.edge, route.upstream)
                  and r.host not in members]
        if others:
            drained.append(route)
    for edge in sorted({r.edge for r in drained}):
        mine = [r for r in drained if r.edge == edge]
        timeout = max(r.drain_timeout for r in mine)
        proc = _edge(inventory, edge, "drain", str(timeout), *[r.server for r in mine])
        if proc.returncode != 0:
            raise KeelError(f"{edge}: draining {', '.join(r.server for r in mine)} failed:\n"
                            f"{_said(proc)}")
        log(f"{edge}: drained {', '.join(r.server for r in mine)}")
    return drained


def _sole(paths: list[Route], members: list[str]) -> list[Route]:
    """Routes to the batch whose upstream has no server outside it."""
    return [r for r in paths if r.host in members
            and not [o for o in paths if (o.edge, o.upstream) == (r.edge, r.upstream)
                     and o.host not in members]]


def _surge(inventory: Path, paths: list[Route], members: list[str],
           log) -> tuple[list[Route], dict[str, str]]:
    """Where the batch is an upstream's only server: the new definition starts beside the
    running one on its surge port, is gated (health, smoke request) and takes the edge's
    traffic. Returns the routes switched, and {host: check} if a surge copy failed (the
    running services were not touched; the copies are stopped)."""
    sole = _sole(paths, members)
    for route in sole:
        if not route.surge:
            log(f"{route.edge}: upstream {route.upstream} has no server besides {route.host} "
                "and no surge port: recreated in place")
    sole = [r for r in sole if r.surge]
    if not sole:
        return [], {}
    hosts = sorted({r.host for r in sole})
    proc = _pyinfra(*_limit(hosts), "-y", "--json", str(inventory), SURGE)
    started = {(name, op["name"].split("Start ", 1)[1].split("-surge beside")[0])
               for op in _operations(proc) if "-surge beside " in op["name"]
               for name in op["success"]}
    failed = {name: "surge: " + (_said(proc, name) or "see pyinfra's output")
              for name in _failed_hosts(proc, hosts)}
    surged = [r for r in sole if (r.host, r.service) in started and r.host not in failed]
    for route in surged:
        if route.smoke and route.host not in failed:
            smoke = route.smoke
            probe = _edge(inventory, route.edge, "smoke", smoke.method,
                          route.url(route.surge) + smoke.path, str(smoke.status))
            if probe.returncode != 0:
                failed[route.host] = (f"smoke request to the surge copy from {route.edge}: "
                                      f"{_said(probe) or 'no answer'}")
    if failed:
        _pyinfra(*_limit(hosts), "-y", str(inventory), SURGE_END)
        return [], {h: f"{why} (the running release was not touched)"
                    for h, why in failed.items()}
    _switch(inventory, surged, log, back_from_surge=False)
    return surged, {}


def _switch(inventory: Path, surged: list[Route], log, *, back_from_surge: bool) -> None:
    """Each edge sends the surged servers' requests to their surge port, or back."""
    for edge in sorted({r.edge for r in surged}):
        mine = [r for r in surged if r.edge == edge]
        targets = [f"{r.server}:{r.port if back_from_surge else r.surge}" for r in mine]
        proc = _edge(inventory, edge, "switch", str(max(r.drain_timeout for r in mine)),
                     *targets)
        if proc.returncode != 0:
            raise KeelError(f"{edge}: switching {', '.join(targets)} failed:\n{_said(proc)}")
        log(f"{edge}: {', '.join(targets)}")


def _operations(proc: subprocess.CompletedProcess) -> list[dict]:
    try:
        return json.loads(proc.stdout)["results"]["operations"]
    except (ValueError, KeyError, TypeError):
        return []


def _undrain(inventory: Path, drained: list[Route], log) -> None:
    for edge in sorted({r.edge for r in drained}):
        servers = [r.server for r in drained if r.edge == edge]
        proc = _edge(inventory, edge, "undrain", *servers)
        if proc.returncode != 0:
            raise KeelError(f"{edge}: putting {', '.join(servers)} back in service failed:\n"
                            f"{_said(proc)}")
        log(f"{edge}: {', '.join(servers)} back in service")


def _gate(inventory: Path, members: list[str], paths: list[Route],
          proc: subprocess.CompletedProcess | None = None) -> dict[str, str]:
    """{host: the check it failed}: the deploy (if one ran), every service's health, then the
    smoke request of each upstream in front of it, sent from that edge."""
    failed = {name: "deploy failed: " + (_said(proc, name) or "see pyinfra's output")
              for name in (_failed_hosts(proc, members) if proc else [])}
    for name, services in status(inventory, members).items():
        # A service the converge did not fail on may be between health checks: it has
        # GATE_SETTLE seconds to become healthy again.
        deadline = time.monotonic() + (0 if name in failed else GATE_SETTLE)
        while unhealthy(services) and time.monotonic() < deadline:
            time.sleep(3)
            services = status(inventory, [name]).get(name, {})
        if bad := unhealthy(services):
            failed[name] = "health: " + ", ".join(
                f"{s} ({services[s]['state']}, {services[s]['health']})" for s in bad)
    for route in paths:
        if route.host in members and route.host not in failed and route.smoke:
            smoke = route.smoke
            probe = _edge(inventory, route.edge, "smoke", smoke.method,
                          route.url() + smoke.path, str(smoke.status))
            if probe.returncode != 0:
                failed[route.host] = (f"smoke request from {route.edge}: "
                                      f"{_said(probe) or 'no answer'}")
    return failed


def _output(proc: subprocess.CompletedProcess, host: str) -> list[str]:
    """What a command run by `pyinfra exec` printed on host (pyinfra prefixes its lines)."""
    prefix = f"[{host}] "
    return [ln[len(prefix):] for ln in proc.stderr.splitlines() if ln.startswith(prefix)]


def _said(proc: subprocess.CompletedProcess, host: str | None = None) -> str:
    """keel's own error lines in a pyinfra run's output (of one host, if given)."""
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines()
             if "keel" in ln and ("error" in ln.lower() or "keel-edge:" in ln or "keel:" in ln)
             and (host is None or host in ln)]
    return "; ".join(dict.fromkeys(lines))[-600:]


def _failed_hosts(proc: subprocess.CompletedProcess, members: list[str]) -> list[str]:
    try:
        document = json.loads(proc.stdout)
        failed = list(document["results"]["failed_hosts"])
    except (ValueError, KeyError, TypeError):
        failed = []
    if proc.returncode != 0 and not failed:
        failed = list(members)
    return failed
