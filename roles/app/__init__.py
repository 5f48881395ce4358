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
import shlex
from pathlib import PurePath

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from keel.core.render import render
from keel.core.roles import Declaration, Role
from keel.core.schema import PortRule
from keel.core.secrets import SecretFile
from keel.deploy.containers import ImageExists, Networks, PathModes, Volumes, auth_env
from keel.deploy.ops import ManagedFile, managed_file
from keel.deploy.secrets import deliver
from roles.app.facts import Accounts, ConfigCopies, Units
from roles.app.schema import Settings, config_content, cross_check, effective, start_order
from roles.app.units import (
    CONFIG_DIR,
    HELPER,
    UNIT_DIR,
    built_image,
    config_path,
    context_tar,
    critical_volumes,
    render_unit,
    unit_name,
)


def secrets(settings: Settings) -> list[SecretFile]:
    """The secret files the services use (owners by number; delivery names them)."""
    return [f for files_ in _secret_files(settings, {}).values() for f in files_]


def _secret_files(settings, names: dict[str, str]) -> dict[str, list[SecretFile]]:
    """service -> its SecretFiles. A mounted secret is owned by the service's user (names maps
    "u:<uid>"/"g:<gid>" to host account names); an env secret is read by root."""
    out: dict[str, list[SecretFile]] = {}
    for name, svc in settings.app_services.items():
        uid, _, gid = (effective(settings, svc).user or "0:0").partition(":")
        gid = gid or uid
        for i, item in enumerate(svc.secrets):
            owner, group = ("root", "root") if item.env else \
                (names.get(f"u:{uid}", uid), names.get(f"g:{gid}", gid))
            out.setdefault(name, []).append(SecretFile(
                dest=f"app/{name}/{item.secret}", secret=item.secret, owner=owner, group=group,
                named_by={item.secret: f"app_services.{name}.secrets[{i}].secret"}))
    return out


def ports(settings: Settings) -> list[PortRule]:
    """Published ports bound to a non-loopback address, and DNS for networks with a subnet."""
    rules = []
    for name, svc in settings.app_services.items():
        for port in svc.ports:
            if not port.address.startswith("127.") and port.address != "::1":
                rules.append(PortRule(port=port.port, proto=port.proto, sources=port.sources,
                                      comment=f"app {name}"))
                if port.surge:  # the edge reaches a surge copy there during a release
                    rules.append(PortRule(port=port.surge, proto=port.proto,
                                          sources=port.sources, comment=f"app {name} (surge)"))
    subnets = [n.subnet for n in settings.app_networks.values() if n.subnet]
    if subnets and settings.app_engine == "podman":
        rules.append(PortRule(port=53, proto="udp", sources=subnets,
                              comment="app networks DNS (aardvark-dns)"))
    return rules


# --- the role ------------------------------------------------------------------------------

@deploy("app")
def apply(settings: Settings) -> None:
    engine = settings.app_engine
    files.directory(name="App state directory", path=settings.app_state_dir, mode="0700")
    managed_file(name="Install app helper (health waits, env-files)", dest=HELPER,
                 content=render("app", "keel-app.sh", engine=engine), mode="0755")
    recreate = _networks(settings)
    _volumes(settings)
    images = ensure_images(settings)
    names = accounts(settings)
    for name, changed in _secrets(settings, names).items():
        recreate[name] = recreate.get(name, False) or changed
    configs(settings, names)
    units, written = _units(settings, images)
    systemd.daemon_reload(name="Reload systemd units", _if=any_changed(*written))
    _start(settings, units, recreate)
    record_release(settings, written)
    _remove_stale(settings, any(units.values()))


def _networks(settings) -> dict[str, bool]:
    """Create missing networks; recreate changed ones. Returns services to recreate."""
    engine = settings.app_engine
    present = host.get_fact(Networks, engine=engine)
    recreate: dict[str, bool] = {}
    for name, net in settings.app_networks.items():
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
            members = [s for s, svc in settings.app_services.items() if name in svc.networks]
            stop = f"systemctl stop {' '.join(unit_name(s) for s in members)}; " if members else ""
            server.shell(name=f"Recreate network {name} (definition changed)",
                         commands=[f"{stop}{engine} network rm -f {name} && {create}"])
            recreate.update({s: True for s in members})
    return recreate


def _volumes(settings) -> None:
    engine = settings.app_engine
    present = host.get_fact(Volumes, engine=engine)
    for name, vol in settings.app_volumes.items():
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
    paths = {m.source: m for svc in settings.app_services.values() for m in svc.volumes
             if m.source.startswith("/")}
    if paths:
        current = host.get_fact(PathModes, paths=sorted(paths))
        for path, mount in sorted(paths.items()):
            owner, mode = mount.owner or "0:0", (mount.mode or "755").lstrip("0")
            if current.get(path) != f"{owner} {mode}":
                server.shell(name=f"Host directory {path}", commands=[
                    f"mkdir -p {path} && chown {owner} {path} && chmod {mode} {path}"])


def ensure_images(settings) -> dict[str, str]:
    """Each service's image reference; pulled or built (once per context) when missing."""
    engine = settings.app_engine
    images, handled = {}, set()
    for name, svc in settings.app_services.items():
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
        stem = f"{settings.app_state_dir}/build/{PurePath(svc.build.context).name}-{digest}"
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


def accounts(settings) -> dict[str, str]:
    """"u:<uid>"/"g:<gid>" -> host account name, for the users of services with secret or
    config files. Those files are owned by the service's numeric user; ids without a host
    account get one (app<id>, no login), so owners read by name, as the file checks compare
    them."""
    users = {effective(settings, svc).user for svc in settings.app_services.values()
             if svc.configs or any(not s.env for s in svc.secrets)}
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
    return names


def _secrets(settings, names: dict[str, str]) -> dict[str, bool]:
    """Deliver each service's secrets. Returns whether each service's secrets will change."""
    changed: dict[str, bool] = {}
    for name, files_ in _secret_files(settings, names).items():
        for file in files_:
            op = deliver(name=f"Secret {file.secret} for {name}", file=file)
            changed[name] = changed.get(name, False) or bool(op.will_change)
    return changed


def configs(settings, names: dict[str, str]) -> None:
    """Each service's copy of the configs it mounts, owned by its user (config_path)."""
    for name, svc in settings.app_services.items():
        uid, _, gid = effective(settings, svc).user.partition(":")
        for mount in svc.configs:
            config = settings.app_configs[mount.config]
            managed_file(name=f"Config {mount.config} for {name}",
                         dest=config_path(settings, name, mount.config),
                         content=config_content(config),
                         mode=config.mode, user=names.get(f"u:{uid}", uid),
                         group=names.get(f"g:{gid or uid}", gid or uid))


def _units(settings, images: dict[str, str]) -> tuple[dict[str, bool], list]:
    """Write each service's unit; keep the definitions this run replaces (and only those,
    so a rollback undoes exactly the last change). Returns which units change, and the
    operations that write them."""
    changed, replaced = {}, []
    # Dependencies first: a unit is verified once the units it names are in place.
    contents = {name: render_unit(settings, name, settings.app_services[name], images[name])
                for name in start_order(settings.app_services)}
    for name, content in contents.items():
        current = host.get_fact(ManagedFile, path=f"{UNIT_DIR}/{unit_name(name)}")
        changed[name] = current is None or \
            current["sha1"] != hashlib.sha1(content.encode()).hexdigest()
        if changed[name] and current:
            replaced.append(name)
    if any(changed.values()):
        previous = f"{settings.app_state_dir}/previous"
        keep = [f"cp -p {UNIT_DIR}/{unit_name(n)} {previous}/" for n in replaced]
        server.shell(name="Keep the definitions this run replaces", commands=[
            f"mkdir -p {previous} && rm -f {previous}/*.service", *keep])
    # systemd-analyze verify refuses a unit systemd would not load or run: the running unit
    # and its file stay, and this host fails.
    written = [managed_file(name=f"Unit for {name}", dest=f"{UNIT_DIR}/{unit_name(name)}",
                            content=content, mode="0644",
                            check=f"systemd-analyze verify {UNIT_DIR}/{unit_name(name)}")
               for name, content in contents.items()]
    return changed, written


def _start(settings, units: dict[str, bool], recreate: dict[str, bool]) -> None:
    order = start_order(settings.app_services)
    names = [unit_name(n) for n in order]
    status = host.get_fact(SystemdStatus, services=names)
    enabled = host.get_fact(SystemdEnabled, services=names)
    for name in order:
        unit = unit_name(name)
        svc = settings.app_services[name]
        if units[name] or recreate.get(name):
            verb = "Start" if not status.get(unit) and units[name] else "Recreate"
            server.shell(name=f"{verb} {name} (waits for health)",
                         commands=[f"systemctl restart {unit}"])
        elif not status.get(unit) and svc.restart != "no":
            server.shell(name=f"Start {name} (waits for health)",
                         commands=[f"systemctl start {unit}"])
        if not enabled.get(unit):
            server.shell(name=f"Enable {name} at boot", commands=[f"systemctl enable {unit}"])


def record_release(settings, changes: list) -> None:
    """Once the services run and are healthy: the release the units define (keel status)."""
    if settings.app_services:
        units = " ".join(f"{UNIT_DIR}/{unit_name(n)}" for n in sorted(settings.app_services))
        server.shell(name="Record the release (config hash, image ids)",
                     commands=[f"{HELPER} record {settings.app_state_dir}/releases {units}"],
                     _if=any_changed(*changes))


def _remove_stale(settings, units_changed: bool) -> None:
    """Stop and remove services that left the data (their volumes stay), and config copies
    that no unit of a service in the data mounts."""
    removed = [server.shell(name=f"Remove service {name}", commands=[
                   f"systemctl disable --now {unit_name(name)}",
                   f"rm -f {UNIT_DIR}/{unit_name(name)}"])
               for name in host.get_fact(Units) if name not in settings.app_services]
    if removed:
        systemd.daemon_reload(name="Reload systemd units (removed services)",
                              _if=any_changed(*removed))
    # Kept: the copies the data's units mount, and those of the definitions kept for a
    # rollback: the units this run replaces (read before it), or if it replaces none, the
    # ones kept before.
    copies = host.get_fact(ConfigCopies, state_dir=settings.app_state_dir)
    keep = {config_path(settings, n, m.config) for n, svc in settings.app_services.items()
            for m in svc.configs}
    for name, paths in copies["previous" if not units_changed else "current"].items():
        if name in settings.app_services:
            keep.update(paths)
    stale = sorted(set(copies["present"]) - keep)
    if stale:
        server.shell(name="Remove config copies no definition mounts", commands=[
            shlex.join(["rm", "-f", *stale]),
            f"find {CONFIG_DIR} -mindepth 1 -type d -empty -delete"])


def declares(settings: Settings, offers: dict) -> list[Declaration]:
    """Each service's critical volumes, to the restic role on the same host: backed up (after
    the service's backup_hook), restored with the service stopped."""
    out = []
    for name, svc in sorted(settings.app_services.items()):
        volumes = critical_volumes(settings, svc)
        if not volumes:
            continue
        hook = (f"{settings.app_engine} exec {name} {shlex.join(svc.backup_hook)}"
                if svc.backup_hook else None)
        out.append(Declaration(role="restic", key="restic_sets", item={
            "name": f"app-{name}", "volumes": volumes, "engine": settings.app_engine,
            "pre_backup": hook, "units": [unit_name(name)]}))
    return out


ROLE = Role(name="app", settings=Settings, apply=apply, groups=("app",), ports=ports,
            secrets=secrets, cross_check=cross_check, declares=declares)
