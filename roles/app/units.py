"""The app role's pure part: names, image references and unit files from settings."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
from functools import cache
from pathlib import PurePath

from keel import ROOT
from keel.core.render import render, systemd_arg
from keel.core.secrets import RUN_DIR
from roles.app.schema import config_content, effective

HELPER = "/usr/local/libexec/keel-app"
UNIT_DIR = "/etc/systemd/system"
MARKER = "# managed by keel: roles/app"


def unit_name(service: str) -> str:
    return f"app-{service}.service"


def secret_path(service: str, secret: str) -> str:
    return f"/run/keel/secrets/app/{service}/{secret}"


CONFIG_DIR = "/etc/keel/app/configs"


def config_path(settings, service: str, config: str) -> str:
    """Each service's own copy of a config (owned by the service's user), named by the
    content's digest: a changed config changes its users' units, so it recreates them, and the
    copy the replaced unit mounts stays for a rollback."""
    digest = hashlib.sha256(config_content(settings.app_configs[config]).encode()).hexdigest()
    return f"{CONFIG_DIR}/{service}/{config}-{digest[:12]}"


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


def render_unit(settings, name: str, svc, image: str, container: str | None = None) -> str:
    """Service `name`'s unit; `container` names its container when it is not the service's
    own (a surge copy)."""
    engine = settings.app_engine
    container = container or name
    h = effective(settings, svc)
    timeout = settings.app_health_timeout
    pre, post = [], []
    if svc.depends_on:
        pre.append([HELPER, "wait-healthy", str(timeout), *svc.depends_on])
    env_secrets = [s for s in svc.secrets if s.env]
    env_file = f"/run/keel/app/{name}.env"
    if env_secrets:
        pre.append([HELPER, "env-file", env_file,
                    *[f"{s.env}={secret_path(name, s.secret)}" for s in env_secrets]])
    options = _run_options(settings, name, svc, h, env_file if env_secrets else None)
    options[options.index("--name") + 1] = container
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
        stop = [binary, "stop", "--ignore", "-t", str(svc.stop_timeout), container]
        stop_post = [binary, "rm", "-f", "--ignore", "-t", "0", container]
    else:
        # docker run takes one network; the others are connected before the start.
        pre.append(["-" + binary, "rm", "-f", container])
        pre.append([binary, "create", *options, image, *command])
        pre += [[binary, "network", "connect", net, container] for net in svc.networks[1:]]
        start = [binary, "start", "-a", container]
        stop = [binary, "stop", "-t", str(svc.stop_timeout), container]
        stop_post = ["-" + binary, "rm", "-f", container]
    if svc.health:
        post.append([HELPER, "wait-healthy", str(timeout), container])
    deps = [unit_name(d) for d in svc.depends_on]
    # Env-files and mounts under /run/keel/secrets exist only once keel-secrets has run.
    if svc.secrets or any(p.startswith(RUN_DIR + "/")
                          for p in [*svc.env_files, *(m.source for m in svc.volumes)]):
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
        notify=engine == "podman", image=image, critical=critical_volumes(settings, svc),
    )


def surge_unit(settings, name: str, svc, image: str) -> str | None:
    """The service as a second container, <name>-surge, beside the running one: it publishes
    only the ports that have a surge port, on that port. None if none has."""
    ports = [p.model_copy(update={"port": p.surge}) for p in svc.ports if p.surge]
    if not ports:
        return None
    return render_unit(settings, name, svc.model_copy(update={"ports": ports}), image,
                       container=f"{name}-surge")


def _run_options(settings, name: str, svc, h, env_file: str | None) -> list[str]:
    engine = settings.app_engine
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
    for mount in svc.configs:
        opts += ["-v", f"{config_path(settings, name, mount.config)}:{mount.target}:ro"]
    for item in svc.secrets:
        if not item.env:
            target = item.target or f"/run/secrets/{item.secret}"
            opts += ["-v", f"{secret_path(name, item.secret)}:{target}:ro"]
    for path in [*svc.env_files, *([env_file] if env_file else [])]:
        opts += ["--env-file", path]
    for key, value in sorted(svc.environment.items()):
        opts += ["-e", f"{key}={value}"]
    return opts


def critical_volumes(settings, svc) -> list[str]:
    return [m.source for m in svc.volumes
            if m.source in settings.app_volumes and settings.app_volumes[m.source].critical]


def _engine_size(value: str) -> str:
    """"512M", "1GiB", "200MB" -> what both engines take ("512m", "1g", "200m")."""
    number = value.rstrip("BbIi").strip()
    return number[:-1] + number[-1].lower() if number[-1].isalpha() else number


def exec_line(argv: list[str]) -> str:
    """A command line for a systemd Exec*= setting: quoted words, % and $ escaped."""
    return " ".join(systemd_arg(arg) for arg in argv)
