"""app's settings: services, networks and volumes, with checks across services."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from keel import ROOT
from keel.core.schema import (
    Address,
    Cidr,
    DeepMerge,
    Memory,
    Model,
    Port,
    RoleSettings,
    Source,
)

ServiceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
ObjectName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
Duration = Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m|h)$")]
AbsPath = Annotated[str, Field(pattern=r"^/[^\s:,]*$")]
UserSpec = Annotated[str, Field(pattern=r"^[a-z0-9_][a-z0-9_.-]*(:[a-z0-9_][a-z0-9_.-]*)?$")]
Owner = Annotated[str, Field(pattern=r"^[0-9]+:[0-9]+$")]
Mode = Annotated[str, Field(pattern=r"^0?[0-7]{3}$")]
Capability = Annotated[str, Field(pattern=r"^(ALL|[A-Z_]+)$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _context(value: str) -> str:
    path = (ROOT / value).resolve()
    if not path.is_relative_to(ROOT) or not path.is_dir():
        raise ValueError("expected a directory inside the repository")
    return value


def _repo_file(value: str) -> str:
    path = (ROOT / value).resolve()
    if not path.is_relative_to(ROOT) or not path.is_file():
        raise ValueError("expected a file inside the repository")
    if path.is_relative_to(ROOT / "secrets"):
        raise ValueError("expected a file outside secrets/ (configs are not secret)")
    return value


RepoFile = Annotated[str, AfterValidator(_repo_file)]
def _config_mode(value: str) -> str:
    if not re.match(r"^0?[45][045]0$", value):
        raise ValueError("expected a mode that lets the owner read (and execute, for a script), "
                         "the group at most the same, others nothing: '0440', '0400', '0550'")
    return value


# Not writable (the mount is read-only anyway), and not world-readable.
ConfigMode = Annotated[str, AfterValidator(_config_mode)]


class Config(Model):
    # A Jinja template of this repository, rendered with vars on the controller ...
    template: RepoFile | None = None
    vars: dict[EnvName, str | int | float | bool] = {}
    # ... or a file of this repository, shipped as it is (text).
    file: RepoFile | None = None
    mode: ConfigMode = "0440"

    @model_validator(mode="after")
    def _one_source(self):
        if (self.template is None) == (self.file is None):
            raise ValueError("set exactly one of template (rendered) or file (shipped)")
        if self.file is not None and self.vars:
            raise ValueError("vars are for a template; a file is shipped as it is")
        config_content(self)  # an undefined variable or a syntax error is bad data, found now
        return self


def config_content(config: Config) -> str:
    """A config's file content: its template rendered, or its file."""
    import jinja2

    from keel.core.render import jinja

    path = ROOT / (config.template or config.file)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{config.template or config.file} is not UTF-8 text") from None
    if config.file:
        return text
    try:
        return jinja().from_string(text).render(**config.vars)
    except jinja2.TemplateError as exc:
        raise ValueError(f"template {config.template} does not render: {exc}") from None


class ConfigMount(Model):
    # A config of app_configs, mounted read-only at target.
    config: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    target: AbsPath


class Build(Model):
    # Directory in this repository, shipped to the host and built there.
    context: Annotated[str, AfterValidator(_context)]
    file: str = "Containerfile"
    args: dict[EnvName, str] = {}


class Secret(Model):
    # Secret name (secrets/<env>.yaml).
    secret: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    # File path inside the container (default /run/secrets/<secret>) ...
    target: AbsPath | None = None
    # ... or an environment variable, given through an env-file instead of a mount.
    env: EnvName | None = None

    @model_validator(mode="after")
    def _one_way(self):
        if self.target and self.env:
            raise ValueError("set either target (a mounted file) or env (an env-file), not both")
        return self


class PublishedPort(Model):
    port: Port
    target: Port
    address: Address = "127.0.0.1"
    proto: Literal["tcp", "udp"] = "tcp"
    # Who may connect (firewall), for ports bound to a non-loopback address.
    sources: list[Source] = []
    # keel rollout, where this host is its edge upstream's only server: the new definition
    # starts beside the running one on this port and serves while the service is recreated.
    surge: Port | None = None


class Mount(Model):
    # A named volume (app_volumes) or an absolute host path.
    source: Annotated[str, Field(pattern=r"^(/[^\s:,]*|[a-z][a-z0-9_-]{0,62})$")]
    target: AbsPath
    read_only: bool = False
    # Host paths only: owner ("uid:gid") and mode of the directory keel creates.
    owner: Owner | None = None
    mode: Mode | None = None


class Health(Model):
    # Exec form ["cmd", "arg"] or a shell command string.
    test: Annotated[list[str], Field(min_length=1)] | str
    interval: Duration = "30s"
    timeout: Duration = "10s"
    retries: Annotated[int, Field(ge=1)] = 3
    start_period: Duration = "0s"


class Limits(Model):
    cpus: Annotated[float, Field(gt=0)] | None = None
    memory: Memory | None = None
    memory_reservation: Memory | None = None
    pids: Annotated[int, Field(ge=16)] | None = 512


class Hardening(Model):
    user: UserSpec | None = "65534:65534"
    read_only: bool = True
    cap_drop: list[Capability] = ["ALL"]
    cap_add: list[Capability] = []
    no_new_privileges: bool = True
    tmpfs: list[AbsPath] = ["/tmp"]


class Service(Model):
    image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")] | None = None
    build: Build | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[EnvName, str] = {}
    # Env-files on the host, read by the engine at start (e.g. the storage role's
    # /run/keel/secrets/app/storage.env); their roles restart the unit when they change.
    env_files: list[AbsPath] = []
    secrets: list[Secret] = []
    configs: list[ConfigMount] = []
    ports: list[PublishedPort] = []
    volumes: list[Mount] = []
    networks: list[ObjectName] = []
    health: Health | None = None
    limits: Limits = Limits()
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "unless-stopped"
    depends_on: list[ServiceName] = []
    stop_timeout: Annotated[int, Field(ge=1)] = 10
    # Run in the service's container before its critical volumes are backed up (restic role),
    # e.g. a database dumped into one of them so the backup is consistent.
    backup_hook: list[str] | None = None
    # Hardening, each key overriding app_hardening (e.g. read_only: false).
    user: UserSpec | None = None
    read_only: bool | None = None
    cap_drop: list[Capability] | None = None
    cap_add: list[Capability] | None = None
    no_new_privileges: bool | None = None
    tmpfs: list[AbsPath] | None = None

    @model_validator(mode="after")
    def _image_or_build(self):
        if (self.image is None) == (self.build is None):
            raise ValueError("set exactly one of image (pulled) or build (a context to build)")
        return self


class Network(Model):
    subnet: Cidr | None = None
    # No route out of the host (and no published ports) for its members.
    internal: bool = False


class Volume(Model):
    # Owner ("uid:gid") and mode of the volume's top directory.
    owner: Owner | None = None
    mode: Mode | None = None
    # Holds data that must be backed up (database, uploads); caches are not critical.
    critical: bool = False


class Settings(RoleSettings):
    app_engine: Literal["podman", "docker"] = Field(
        "podman",
        description=(
            'Container engine the services run on: "podman" or "docker" (as '
            "container_runtime_engine)."
        ),
    )
    app_services: Annotated[dict[ServiceName, Service], DeepMerge()] = Field(
        {},
        description=(
            "Services: {name: {image | build, command?, environment?, secrets?, configs?, "
            "ports?, volumes?, networks?, health?, limits?, restart?, depends_on?, hardening "
            "overrides}}; see README."
        ),
    )
    app_networks: Annotated[dict[ObjectName, Network], DeepMerge()] = Field(
        {},
        description=(
            "Networks: {name: {subnet?, internal?}}. Networks are isolated from each "
            "other: services that share none cannot talk."
        ),
    )
    app_volumes: Annotated[dict[ObjectName, Volume], DeepMerge()] = Field(
        {},
        description=(
            'Named volumes: {name: {owner?: "uid:gid", mode?, critical?}}. Never deleted by keel.'
        ),
    )
    app_configs: Annotated[dict[ObjectName, Config], DeepMerge()] = Field(
        {},
        description=(
            "Config files: {name: {template + vars? | file, mode?}}, rendered or shipped from "
            "the repository and mounted read-only by the services that list them in their "
            "`configs` ([{config, target}]); see README."
        ),
    )
    app_hardening: Annotated[Hardening, DeepMerge()] = Field(
        {
            "user": "65534:65534",
            "read_only": True,
            "cap_drop": ["ALL"],
            "cap_add": [],
            "no_new_privileges": True,
            "tmpfs": ["/tmp"],
        },
        description=(
            "Hardening every service gets unless it overrides a key: a non-root user, a "
            "read-only root filesystem (with tmpfs dirs), no capabilities, no privilege "
            "escalation."
        ),
    )
    app_health_timeout: Annotated[int, Field(ge=5)] = Field(
        120,
        description=(
            "Seconds a service may take to become healthy (and to wait for its dependencies)."
        ),
    )
    app_state_dir: AbsPath = Field(
        "/var/lib/keel/app",
        description=(
            "keel's state on the host: build contexts, previous unit definitions (for rollback)."
        ),
    )


# --- checks across services (run by keel.core.data through cross_check) ----------------------


def service_problems(settings: Settings) -> list[tuple[str, str]]:
    """(key, message) for each inconsistency between services, networks and volumes."""
    problems: list[tuple[str, str]] = []
    services = settings.app_services
    bound: dict[tuple[int, str], list[tuple[str, str, str]]] = {}
    for name, svc in services.items():
        key = f"app_services.{name}"
        for i, net in enumerate(svc.networks):
            if net not in settings.app_networks:
                problems.append(
                    (f"{key}.networks[{i}]", f"unknown network '{net}'; declare it in app_networks")
                )
        for i, mount in enumerate(svc.volumes):
            if not mount.source.startswith("/") and mount.source not in settings.app_volumes:
                problems.append(
                    (
                        f"{key}.volumes[{i}].source",
                        f"unknown volume '{mount.source}'; declare it in app_volumes",
                    )
                )
        for i, dep in enumerate(svc.depends_on):
            if dep not in services:
                problems.append((f"{key}.depends_on[{i}]", f"unknown service '{dep}'"))
            elif dep == name:
                problems.append((f"{key}.depends_on[{i}]", "a service cannot depend on itself"))
        for i, mount in enumerate(svc.configs):
            if mount.config not in settings.app_configs:
                problems.append(
                    (
                        f"{key}.configs[{i}].config",
                        f"unknown config '{mount.config}'; declare it in app_configs",
                    )
                )
        targets = [m.target for m in svc.volumes] + [m.target for m in svc.configs]
        for i, mount in enumerate(svc.configs):
            if targets.count(mount.target) > 1:
                problems.append(
                    (f"{key}.configs[{i}].target", f"{mount.target} is mounted twice")
                )
        for what in ("secrets", "configs"):
            if getattr(svc, what) and not _numeric_user(effective(settings, svc).user):
                problems.append(
                    (
                        f"{key}.{what}",
                        f"services with {what} need a numeric user "
                        f"('uid:gid'), so the {what[:-1]} files can be owned by it",
                    )
                )
        for i, port in enumerate(svc.ports):
            for number in filter(None, (port.port, port.surge)):  # a surge copy publishes too
                for other, okey, addr in bound.get((number, port.proto), []):
                    if (
                        addr == port.address
                        or "0.0.0.0" in (addr, port.address)
                        or "::" in (addr, port.address)
                    ):
                        problems.append(
                            (
                                f"{key}.ports[{i}]",
                                f"port {number}/{port.proto} on {port.address} is "
                                f"already published by service '{other}' ({okey})",
                            )
                        )
                bound.setdefault((number, port.proto), []).append(
                    (name, f"app_services.{name}.ports[{i}]", port.address)
                )
    cycle = _cycle(services)
    if cycle:
        problems.append(
            (f"app_services.{cycle[0]}.depends_on", "depends_on cycle: " + " -> ".join(cycle))
        )
    return problems


def _numeric_user(user: str | None) -> bool:
    return bool(user) and re.match(r"^[0-9]+(:[0-9]+)?$", user) is not None


def effective(settings: Settings, svc: Service) -> Hardening:
    """A service's hardening: app_hardening with the service's own overrides."""
    overrides = {k: getattr(svc, k) for k in Hardening.model_fields if getattr(svc, k) is not None}
    return settings.app_hardening.model_copy(update=overrides)


def _cycle(services: dict[str, Service]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in services[name].depends_on:
            if dep not in services or dep == name:
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in services:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def start_order(services: dict[str, Service]) -> list[str]:
    """Services with every dependency before its dependents (data order otherwise)."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in services[name].depends_on:
            visit(dep)
        order.append(name)

    for name in services:
        visit(name)
    return order


def cross_check(hosts) -> list:
    from keel.core.data import Problem

    problems = []
    for host in hosts:
        if "app" not in host.roles:
            continue
        settings = host.settings("app")
        for key, message in service_problems(settings):
            problems.append(Problem(host.name, key, host.source_at(key), message))
        engine = host.values.get("container_runtime_engine")
        if "container_runtime" in host.roles and engine and engine != settings.app_engine:
            problems.append(
                Problem(
                    host.name,
                    "app_engine",
                    host.sources.get("app_engine", "?"),
                    f"'{settings.app_engine}' differs from container_runtime_engine '{engine}' "
                    f"(set in {host.sources.get('container_runtime_engine', '?')}); set both",
                )
            )
    return problems
