"""app: containerised services from data, each a systemd unit, started in dependency order.

A service's whole definition is rendered into its unit file (`/etc/systemd/system/app-<name>
.service`): the unit's content decides recreation. A changed unit (or a rotated secret)
recreates that service only; an unchanged one is only started if it is not running. The unit
waits for its dependencies' health before it starts and for its own health before systemd
calls it started, so a converge (or a boot) brings services up in order, and a failed health
check fails the converge on that host (which is what stops a rolling update: `keel rollout`).
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
from functools import cache
from pathlib import PurePath

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import Sha1File
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files, server

from keel import ROOT
from keel.containers import ImageExists, Networks, PathModes, Volumes, auth_env
from keel.data import settings
from keel.ops import ManagedFile, managed_file, render
from keel.schema import PortRule
from keel.secrets import RUN_DIR, SecretFile, deliver
from roles.app.schema import Schema, cross_check, effective, start_order  # noqa: F401

DEFAULTS = {
    # Container engine the services run on: "podman" or "docker" (as container_runtime_engine).
    "app_engine": "podman",
    # Services: {name: {image | build, command?, environment?, secrets?, ports?, volumes?,
    # networks?, health?, limits?, restart?, depends_on?, hardening overrides}}; see README.
    "app_services": {},
    # Networks: {name: {subnet?, internal?}}. Networks are isolated from each other:
    # services that share none cannot talk.
    "app_networks": {},
    # Named volumes: {name: {owner?: "uid:gid", mode?, critical?}}. Never deleted by keel.
    "app_volumes": {},
    # Hardening every service gets unless it overrides a key: a non-root user, a read-only
    # root filesystem (with tmpfs dirs), no capabilities, no privilege escalation.
    "app_hardening": {"user": "65534:65534", "read_only": True, "cap_drop": ["ALL"],
                      "cap_add": [], "no_new_privileges": True, "tmpfs": ["/tmp"]},
    # Seconds a service may take to become healthy (and to wait for its dependencies).
    "app_health_timeout": 120,
    # keel's state on the host: build contexts, previous unit definitions (for rollback).
    "app_state_dir": "/var/lib/keel/app",
}

HELPER = "/usr/local/libexec/keel-app"
UNIT_DIR = "/etc/systemd/system"
MARKER = "# managed by keel: roles/app"


def unit_name(service: str) -> str:
    return f"app-{service}.service"


def secret_path(service: str, secret: str) -> str:
    return f"/run/keel/secrets/app/{service}/{secret}"


def secrets(data: Schema) -> list[SecretFile]:
    """The secret files the services use (owners by number; delivery names them)."""
    return [f for files_ in _secret_files(data, {}).values() for f in files_]


def _secret_files(data, names: dict[str, str]) -> dict[str, list[SecretFile]]:
    """service -> its SecretFiles. A mounted secret is owned by the service's user (names maps
    "u:<uid>"/"g:<gid>" to host account names); an env secret is read by root."""
    out: dict[str, list[SecretFile]] = {}
    for name, svc in data.app_services.items():
        uid, _, gid = (effective(data, svc).user or "0:0").partition(":")
        gid = gid or uid
        for i, item in enumerate(svc.secrets):
            owner, group = ("root", "root") if item.env else \
                (names.get(f"u:{uid}", uid), names.get(f"g:{gid}", gid))
            out.setdefault(name, []).append(SecretFile(
                dest=f"app/{name}/{item.secret}", secret=item.secret, owner=owner, group=group,
                named_by={item.secret: f"app_services.{name}.secrets[{i}].secret"}))
    return out


def ports(data: Schema) -> list[PortRule]:
    """Published ports bound to a non-loopback address, and DNS for networks with a subnet."""
    rules = []
    for name, svc in data.app_services.items():
        for port in svc.ports:
            if not port.address.startswith("127.") and port.address != "::1":
                rules.append(PortRule(port=port.port, proto=port.proto, sources=port.sources,
                                      comment=f"app {name}"))
    subnets = [n.subnet for n in data.app_networks.values() if n.subnet]
    if subnets and data.app_engine == "podman":
        rules.append(PortRule(port=53, proto="udp", sources=subnets,
                              comment="app networks DNS (aardvark-dns)"))
    return rules


# --- facts ---------------------------------------------------------------------------------

class Units(FactBase):
    """Names of the services whose units keel's app role wrote."""

    default = list

    def command(self) -> str:
        return (f"grep -l '^{MARKER}' {UNIT_DIR}/app-*.service 2>/dev/null "
                "| sed 's|.*/app-||; s|\\.service$||' || true")

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class Status(FactBase):
    """{service: {unit, restarts, image, state, health, id, started}} for keel's services."""

    default = dict

    def command(self) -> str:
        fmt = ("{{.Config.Image}}|{{.State.Status}}|"
               "{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.Id}}|{{.State.StartedAt}}")
        return (f"for f in $(grep -l '^{MARKER}' {UNIT_DIR}/app-*.service 2>/dev/null); do "
                "u=$(basename \"$f\" .service); s=${u#app-}; "
                "e=podman; grep -q '^ExecStart.*/docker ' \"$f\" && e=docker; "
                "p=$(systemctl show -p ActiveState -p NRestarts \"$u\" | sort | tr '\\n' ' '); "
                f"i=$($e inspect --format '{fmt}' \"$s\" 2>/dev/null) "
                "&& [ -n \"$i\" ] && [ \"$i\" != '[]' ] || i='|absent|||'; "
                "echo \"$s|$e|$p|$i\"; done")

    def process(self, output) -> dict[str, dict]:
        found = {}
        for line in output:
            parts = line.split("|")
            if len(parts) != 8:  # a container removed while it was read: absent
                parts = [*parts[:3], "", "absent", "", "", ""]
            service, engine, props, image, state, health, cid, started = parts
            prop = dict(p.split("=", 1) for p in props.split())
            found[service] = {
                "engine": engine, "unit": prop.get("ActiveState", ""),
                "restarts": int(prop.get("NRestarts", "0") or 0), "image": image,
                "state": state, "health": health or "-", "id": cid[:12], "started": started,
            }
        return found


# --- the role ------------------------------------------------------------------------------

@deploy("app")
def apply() -> None:
    data = settings("app")
    engine = data.app_engine
    files.directory(name="App state directory", path=data.app_state_dir, mode="0700")
    managed_file(name="Install app helper (health waits, env-files)", dest=HELPER,
                 content=render("app", "keel-app.sh", engine=engine), mode="0755")
    recreate = _networks(data)
    _volumes(data)
    images = _images(data)
    for name, changed in _secrets(data).items():
        recreate[name] = recreate.get(name, False) or changed
    units = _units(data, images)
    if any(units.values()):
        server.shell(name="Reload systemd units", commands=["systemctl daemon-reload"])
    _start(data, units, recreate)
    _remove_stale(data)


def _networks(data) -> dict[str, bool]:
    """Create missing networks; recreate changed ones. Returns services to recreate."""
    engine = data.app_engine
    present = host.get_fact(Networks, engine=engine)
    recreate: dict[str, bool] = {}
    for name, net in data.app_networks.items():
        digest = hashlib.sha256(net.model_dump_json().encode()).hexdigest()[:12]
        argv = [engine, "network", "create", "--label", f"keel.hash={digest}"]
        if engine == "podman":
            argv += ["-o", "isolate=true"]  # docker isolates bridges from each other itself
        if net.internal:
            argv.append("--internal")
        if net.subnet:
            argv += ["--subnet", net.subnet]
        create = " ".join([*argv, name])
        if name not in present:
            server.shell(name=f"Create network {name}", commands=[create])
        elif present[name].get("keel.hash") != digest:
            members = [s for s, svc in data.app_services.items() if name in svc.networks]
            stop = f"systemctl stop {' '.join(unit_name(s) for s in members)}; " if members else ""
            server.shell(name=f"Recreate network {name} (definition changed)",
                         commands=[f"{stop}{engine} network rm -f {name} && {create}"])
            recreate.update({s: True for s in members})
    return recreate


def _volumes(data) -> None:
    engine = data.app_engine
    present = host.get_fact(Volumes, engine=engine)
    for name, vol in data.app_volumes.items():
        fix = []
        if vol.owner:
            fix.append(f"chown {vol.owner} \"$m\"")
        if vol.mode:
            fix.append(f"chmod {vol.mode} \"$m\"")
        mountpoint = f"m=$({engine} volume inspect --format '{{{{.Mountpoint}}}}' {name})"
        if name not in present:
            server.shell(name=f"Create volume {name}", commands=[
                f"{engine} volume create --label keel.critical={str(vol.critical).lower()} "
                f"{name} >/dev/null", "; ".join([mountpoint, *fix]) if fix else "true"])
        elif (vol.owner and present[name]["owner"] != vol.owner) or \
                (vol.mode and present[name]["mode"] != vol.mode.lstrip("0")):
            server.shell(name=f"Set owner and mode of volume {name}",
                         commands=["; ".join([mountpoint, *fix])])
    paths = {m.source: m for svc in data.app_services.values() for m in svc.volumes
             if m.source.startswith("/")}
    if paths:
        current = host.get_fact(PathModes, paths=sorted(paths))
        for path, mount in sorted(paths.items()):
            owner, mode = mount.owner or "0:0", (mount.mode or "755").lstrip("0")
            if current.get(path) != f"{owner} {mode}":
                server.shell(name=f"Host directory {path}", commands=[
                    f"mkdir -p {path} && chown {owner} {path} && chmod {mode} {path}"])


def context_tar(build) -> tuple[bytes, str]:
    """A build context as a reproducible tar, and the digest that names its image."""
    return _context_tar(build.context, build.file, tuple(sorted(build.args.items())))


@cache
def _context_tar(context: str, file: str, args: tuple) -> tuple[bytes, str]:
    root = ROOT / context
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(str(path.relative_to(root)))
            content = path.read_bytes()
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    digest = hashlib.sha256(buf.getvalue())
    digest.update(f"{file}\0{args}".encode())
    return buf.getvalue(), digest.hexdigest()[:12]


def built_image(build) -> str:
    """The tag of a build context's image: named by its directory, tagged by its content."""
    return f"localhost/keel/{PurePath(build.context).name}:{context_tar(build)[1]}"


def _images(data) -> dict[str, str]:
    """Each service's image reference; pulled or built (once per context) when missing."""
    engine = data.app_engine
    images, handled = {}, set()
    for name, svc in data.app_services.items():
        image = images[name] = svc.image or built_image(svc.build)
        if image in handled or host.get_fact(ImageExists, engine=engine, image=image):
            handled.add(image)
            continue
        handled.add(image)
        if svc.image:
            server.shell(name=f"Pull image {image}",
                         commands=[f"{auth_env(engine)}{engine} pull -q {image}"])
            continue
        content, digest = context_tar(svc.build)
        stem = f"{data.app_state_dir}/build/{PurePath(svc.build.context).name}-{digest}"
        args = "".join(f"--build-arg {k}={shlex.quote(v)} "
                       for k, v in sorted(svc.build.args.items()))
        files.put(name=f"Ship build context {svc.build.context}", src=io.BytesIO(content),
                  dest=f"{stem}.tar", mode="0600", create_remote_dir=True)
        server.shell(name=f"Build image {image}", commands=[
            f"rm -rf {stem} && mkdir -p {stem} && tar -xf {stem}.tar -C {stem}",
            f"{engine} build -q --no-cache {args}-t {image} -f {stem}/{svc.build.file} {stem}"
            " >/dev/null",
            f"rm -rf {stem} {stem}.tar"])
    return images


class Accounts(FactBase):
    """{"u:<uid>": name, "g:<gid>": name} for the ids that have a host account."""

    default = dict

    def command(self, uids: list[str], gids: list[str]) -> str:
        lookups = [f"getent passwd {u} | cut -d: -f1 | sed 's/^/u:{u} /'" for u in uids]
        lookups += [f"getent group {g} | cut -d: -f1 | sed 's/^/g:{g} /'" for g in gids]
        return "; ".join([*lookups, "true"])

    def process(self, output) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in output if " " in line)


def _secrets(data) -> dict[str, bool]:
    """Deliver each service's secrets. Returns whether each service's secrets will change.

    Secret files are owned by the service's numeric user; ids without a host account get one
    (app<id>, no login), so owners read by name, as the delivery compares them."""
    users = {effective(data, svc).user for svc in data.app_services.values()
             if any(not s.env for s in svc.secrets)}
    ids = [(u.partition(":")[0], u.partition(":")[2] or u.partition(":")[0]) for u in users if u]
    if not ids:
        names = {}
    else:
        names = host.get_fact(Accounts, uids=sorted({u for u, _ in ids}),
                              gids=sorted({g for _, g in ids}))
    for uid, gid in sorted(ids):
        if f"g:{gid}" not in names:
            names[f"g:{gid}"] = f"app{gid}"
            server.shell(name=f"Group app{gid} for services running as gid {gid}",
                         commands=[f"groupadd --system --gid {gid} app{gid}"])
        if f"u:{uid}" not in names:
            names[f"u:{uid}"] = f"app{uid}"
            server.shell(name=f"User app{uid} for services running as uid {uid}", commands=[
                f"useradd --system --uid {uid} --gid {gid} --no-create-home "
                f"--home-dir /nonexistent --shell /usr/sbin/nologin app{uid}"])
    changed: dict[str, bool] = {}
    for name, files_ in _secret_files(data, names).items():
        for file in files_:
            op = deliver(name=f"Secret {file.secret} for {name}", file=file)
            changed[name] = changed.get(name, False) or bool(op.will_change)
    return changed


def _units(data, images: dict[str, str]) -> dict[str, bool]:
    """Write each service's unit; keep the definitions this run replaces (and only those,
    so a rollback undoes exactly the last change). Returns which units change."""
    changed, replaced = {}, []
    contents = {name: render_unit(data, name, svc, images[name])
                for name, svc in data.app_services.items()}
    for name, content in contents.items():
        current = host.get_fact(ManagedFile, path=f"{UNIT_DIR}/{unit_name(name)}")
        changed[name] = current is None or \
            current["sha1"] != hashlib.sha1(content.encode()).hexdigest()
        if changed[name] and current:
            replaced.append(name)
    if any(changed.values()):
        previous = f"{data.app_state_dir}/previous"
        keep = [f"cp {UNIT_DIR}/{unit_name(n)} {previous}/" for n in replaced]
        server.shell(name="Keep the definitions this run replaces", commands=[
            f"mkdir -p {previous} && rm -f {previous}/*.service", *keep])
    for name, content in contents.items():
        managed_file(name=f"Unit for {name}", dest=f"{UNIT_DIR}/{unit_name(name)}",
                     content=content, mode="0644")
    return changed


def _start(data, units: dict[str, bool], recreate: dict[str, bool]) -> None:
    order = start_order(data.app_services)
    names = [unit_name(n) for n in order]
    status = host.get_fact(SystemdStatus, services=names)
    enabled = host.get_fact(SystemdEnabled, services=names)
    for name in order:
        unit = unit_name(name)
        svc = data.app_services[name]
        if units[name] or recreate.get(name):
            verb = "Start" if not status.get(unit) and units[name] else "Recreate"
            server.shell(name=f"{verb} {name} (waits for health)",
                         commands=[f"systemctl restart {unit}"])
        elif not status.get(unit) and svc.restart != "no":
            server.shell(name=f"Start {name} (waits for health)",
                         commands=[f"systemctl start {unit}"])
        if not enabled.get(unit):
            server.shell(name=f"Enable {name} at boot", commands=[f"systemctl enable {unit}"])


def _remove_stale(data) -> None:
    """Stop and remove services that left the data (their volumes stay)."""
    for name in host.get_fact(Units):
        if name not in data.app_services:
            unit = unit_name(name)
            server.shell(name=f"Remove service {name}", commands=[
                f"systemctl disable --now {unit}", f"rm -f {UNIT_DIR}/{unit}",
                "systemctl daemon-reload"])


# --- rollback ------------------------------------------------------------------------------

@deploy("app rollback")
def rollback() -> None:
    """Return services that run the data's current definition to the one they replaced.

    Hosts that a failed rolling update never reached still run the old definition, so they
    are left alone; hosts it updated go back. Revert the data afterwards (a plan shows drift).
    """
    data = settings("app")
    images = {name: svc.image or built_image(svc.build)
              for name, svc in data.app_services.items()}
    restore = []
    for name in start_order(data.app_services):
        path = f"{UNIT_DIR}/{unit_name(name)}"
        previous = f"{data.app_state_dir}/previous/{unit_name(name)}"
        content = render_unit(data, name, data.app_services[name], images[name])
        if host.get_fact(Sha1File, path=path) == hashlib.sha1(content.encode()).hexdigest() \
                and host.get_fact(Sha1File, path=previous):
            restore.append(name)
            server.shell(name=f"Restore previous definition of {name}",
                         commands=[f"mv {previous} {path}"])
    if restore:
        server.shell(name="Reload systemd units", commands=["systemctl daemon-reload"])
    for name in restore:
        server.shell(name=f"Recreate {name} on its previous definition (waits for health)",
                     commands=[f"systemctl restart {unit_name(name)}"])


# --- unit rendering ------------------------------------------------------------------------

def render_unit(data, name: str, svc, image: str) -> str:
    engine = data.app_engine
    h = effective(data, svc)
    timeout = data.app_health_timeout
    pre, post = [], []
    if svc.depends_on:
        pre.append([HELPER, "wait-healthy", str(timeout), *svc.depends_on])
    env_secrets = [s for s in svc.secrets if s.env]
    env_file = f"/run/keel/app/{name}.env"
    if env_secrets:
        pre.append([HELPER, "env-file", env_file,
                    *[f"{s.env}={secret_path(name, s.secret)}" for s in env_secrets]])
    options = _run_options(data, name, svc, h, env_file if env_secrets else None)
    command = list(svc.command or [])
    if svc.entrypoint and engine == "docker":
        options += ["--entrypoint", svc.entrypoint[0]]
        command = [*svc.entrypoint[1:], *command]
    elif svc.entrypoint:
        options += ["--entrypoint", json.dumps(svc.entrypoint)]
    binary = f"/usr/bin/{engine}"
    if engine == "podman":
        start = [binary, "run", "--replace", "--rm", "-d", "--sdnotify=conmon",
                 "--cgroups=no-conmon", *options, image, *command]
        stop = [binary, "stop", "--ignore", "-t", str(svc.stop_timeout), name]
        stop_post = [binary, "rm", "-f", "--ignore", "-t", "0", name]
    else:
        # docker run takes one network; the others are connected before the start.
        pre.append(["-" + binary, "rm", "-f", name])
        pre.append([binary, "create", *options, image, *command])
        pre += [[binary, "network", "connect", net, name] for net in svc.networks[1:]]
        start = [binary, "start", "-a", name]
        stop = [binary, "stop", "-t", str(svc.stop_timeout), name]
        stop_post = ["-" + binary, "rm", "-f", name]
    if svc.health:
        post.append([HELPER, "wait-healthy", str(timeout), name])
    deps = [unit_name(d) for d in svc.depends_on]
    # Env-files under /run/keel/secrets (storage's) exist only once keel-secrets has run.
    if svc.secrets or any(p.startswith(RUN_DIR + "/") for p in svc.env_files):
        deps.append("keel-secrets.service")
    if engine == "docker":
        deps.append("docker.service")
    return render(
        "app", "unit.service", name=name, engine=engine, deps=deps,
        requires=["docker.service"] if engine == "docker" else [],
        pre=[exec_line(a) for a in pre], start=exec_line(start), post=[exec_line(a) for a in post],
        stop=exec_line(stop), stop_post=exec_line(stop_post),
        restart={"no": "no", "on-failure": "on-failure"}.get(svc.restart, "always"),
        start_timeout=2 * timeout + 30, stop_timeout=svc.stop_timeout + 15,
        notify=engine == "podman", image=image, critical=_critical(data, svc),
    )


def _run_options(data, name: str, svc, h, env_file: str | None) -> list[str]:
    engine = data.app_engine
    opts = ["--name", name, "--hostname", name, "--label", f"keel.service={name}",
            "--stop-timeout", str(svc.stop_timeout)]
    if svc.networks:
        opts += ["--network", ",".join(svc.networks) if engine == "podman" else svc.networks[0]]
    if h.user:
        opts += ["--user", h.user]
    if h.read_only:
        opts.append("--read-only")
        if engine == "podman":
            opts.append("--read-only-tmpfs=false")  # the same tmpfs dirs as docker: h.tmpfs
    for path in h.tmpfs:
        opts += ["--tmpfs", path]
    opts += [f"--cap-drop={c}" for c in h.cap_drop] + [f"--cap-add={c}" for c in h.cap_add]
    if h.no_new_privileges:
        opts += ["--security-opt", "no-new-privileges"]
    limits = svc.limits
    if limits.cpus:
        opts += ["--cpus", f"{limits.cpus:g}"]
    if limits.memory:
        opts += ["--memory", _engine_size(limits.memory)]
    if limits.memory_reservation:
        opts += ["--memory-reservation", _engine_size(limits.memory_reservation)]
    if limits.pids:
        opts += ["--pids-limit", str(limits.pids)]
    if svc.health:
        test = svc.health.test
        opts += ["--health-cmd", test if isinstance(test, str) else shlex.join(test),
                 "--health-interval", svc.health.interval, "--health-timeout",
                 svc.health.timeout, "--health-retries", str(svc.health.retries),
                 "--health-start-period", svc.health.start_period]
    for port in svc.ports:
        address = f"[{port.address}]" if ":" in port.address else port.address
        opts += ["-p", f"{address}:{port.port}:{port.target}/{port.proto}"]
    for mount in svc.volumes:
        opts += ["-v", f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")]
    for item in svc.secrets:
        if not item.env:
            target = item.target or f"/run/secrets/{item.secret}"
            opts += ["-v", f"{secret_path(name, item.secret)}:{target}:ro"]
    for path in [*svc.env_files, *([env_file] if env_file else [])]:
        opts += ["--env-file", path]
    for key, value in sorted(svc.environment.items()):
        opts += ["-e", f"{key}={value}"]
    return opts


def _critical(data, svc) -> list[str]:
    return [m.source for m in svc.volumes
            if m.source in data.app_volumes and data.app_volumes[m.source].critical]


def _engine_size(value: str) -> str:
    """"512M", "1GiB", "200MB" -> what both engines take ("512m", "1g", "200m")."""
    number = value.rstrip("BbIi").strip()
    return number[:-1] + number[-1].lower() if number[-1].isalpha() else number


def exec_line(argv: list[str]) -> str:
    """A command line for a systemd Exec*= setting: quoted words, % and $ escaped."""
    words = []
    for arg in argv:
        word = arg.replace("%", "%%").replace("$", "$$")
        if not word or any(c in word for c in " \t\"'\\;"):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)
