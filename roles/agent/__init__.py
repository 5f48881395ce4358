"""agent: keel's reference agent service (seed 000), wired to the platform's parts.

The agent is declared, not hand-written in data: to app (its container service: build or
image, env-files, mounts, ports, health, limits, hardening), to edge (a vhost in front of it,
over loopback), and to container_runtime (the Python clients its image needs). storage and
claude_cli offer what it builds on: the app user's uid, DATA_DIR and the storage
environment; the pinned CLI, its settings, credential and the claude gid. storage declares
the PostgreSQL and Redis logins that DATABASE_URL and REDIS_URL carry.
"""

from __future__ import annotations

import shlex

from pyinfra.api import StringCommand, deploy

from keel.core.roles import Declaration, Endpoint, Role
from keel.deploy.ops import live_check
from roles.agent.schema import Settings
from roles.app.units import unit_name

CONTEXT = "roles/agent/image"
CONFIG = "/etc/claude"  # the claude user's settings, read-only, in the container
AUTH = "/run/secrets/claude_auth"
PACKAGES = ["python3-psycopg2", "python3-redis", "python3-boto3"]
# The container's health: the agent's own /health (every dependency) through its API.
HEALTH = ("import urllib.request; urllib.request.urlopen("
          "'http://127.0.0.1:{port}/health', timeout=25)")


def service(settings: Settings, offers: dict) -> dict:
    """The agent's app service, from its settings and what storage and claude_cli offer."""
    storage, cli = offers["storage"], offers["claude_cli"]
    uid, bindir = storage["uid"], cli["bin"].rsplit("/", 1)[0]
    env = {"AGENT_PORT": str(settings.agent_port),
           "AGENT_METRICS_PORT": str(settings.agent_metrics_port),
           "AGENT_RUN_TIMEOUT": str(settings.agent_run_timeout),
           "AGENT_HOST": offers["host"]["name"],
           "CLAUDE_HEADLESS": "/app/claude-headless", "CLAUDE_BIN": cli["bin"],
           "CLAUDE_CONFIG": CONFIG}
    # Owners and modes as storage and claude_cli set them (app sets those of host paths).
    volumes = [{"source": storage["data_dir"], "target": storage["data_dir"],
                "owner": f"{uid}:{uid}", "mode": "750"},
               {"source": bindir, "target": bindir, "read_only": True, "owner": "0:0",
                "mode": "755"},
               {"source": cli["config_dir"], "target": CONFIG, "read_only": True,
                "owner": f"{cli['uid']}:{cli['uid']}", "mode": cli["config_mode"]}]
    secrets = []
    if cli["auth_secret"]:  # the app role delivers it, owned by the service's user
        env |= {"CLAUDE_AUTH_FILE": AUTH, "CLAUDE_AUTH_ENV": cli["auth_env"]}
        secrets.append({"secret": cli["auth_secret"], "target": AUTH})
    # The storage environment carries credentials (DATABASE_URL, REDIS_URL): the agent reads it
    # from its tmpfs directory, mounted read-only, so no value lands in the container's
    # configuration on disk (an --env-file's values would).
    secret_dir = storage["env_file"].rsplit("/", 1)[0]
    env["AGENT_ENV_FILES"] = storage["env_file"]
    volumes.append({"source": secret_dir, "target": secret_dir, "read_only": True,
                    "owner": "0:0", "mode": "711"})
    definition = {
        "name": "agent",
        "env_files": [cli["env_file"]],
        "environment": env,
        "ports": [{"port": settings.agent_port, "target": settings.agent_port},
                  {"port": settings.agent_metrics_port, "target": settings.agent_metrics_port,
                   "address": "0.0.0.0", "sources": settings.agent_metrics_sources}],
        "volumes": volumes,
        "secrets": secrets,
        "health": {"test": ["python3", "-c", HEALTH.format(port=settings.agent_port)],
                   "interval": "10s", "timeout": "30s", "retries": 3, "start_period": "20s"},
        "limits": settings.agent_limits.model_dump(),
        # The app user, with the claude group: it owns DATA_DIR and reads the CLI's files.
        "user": f"{uid}:{cli['uid']}",
        "tmpfs": ["/tmp"],
    }
    if settings.agent_image:
        definition["image"] = settings.agent_image
    else:
        definition["build"] = {"context": CONTEXT, "args": {"BASE": settings.agent_base_image}}
    return definition


def declares(settings: Settings, offers: dict) -> list[Declaration]:
    if "storage" not in offers or "claude_cli" not in offers or offers["storage"]["uid"] is None \
            or offers["claude_cli"]["uid"] is None:
        return []  # cross_check names what is missing
    out = [Declaration(role="app", key="app_services", item=service(settings, offers)),
           Declaration(role="edge", key="edge_upstreams", item={
               "name": "agent", "group": "agent", "port": settings.agent_port,
               "via": "loopback"})]
    if settings.agent_server_name:
        out.append(Declaration(role="edge", key="edge_vhosts", item={
            "name": "agent", "server_name": settings.agent_server_name, "upstream": "agent",
            "tls": settings.agent_tls}))
    if not settings.agent_image:
        out += [Declaration(role="container_runtime", key="container_runtime_host_packages",
                            item=package) for package in PACKAGES]
    return out


def metrics(settings: Settings) -> list[Endpoint]:
    return [Endpoint(job="agent", port=settings.agent_metrics_port)]


def alerts() -> list[dict]:
    return [{"name": "keel-agent", "rules": [
        {"alert": "AgentDown", "expr": 'up{job="agent"} == 0', "for": "2m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": "The agent on {{ $labels.host }} does not answer",
                         "runbook": "The agent's metrics port does not answer. First check: "
                                    "`keel check <env>` (it names the broken link), then "
                                    "`systemctl status app-agent` on the host."}},
        {"alert": "AgentDependencyFailing", "expr": "agent_dependency_up == 0", "for": "2m",
         "labels": {"severity": "critical"},
         "annotations": {"summary": "The agent on {{ $labels.host }} cannot use "
                                    "{{ $labels.dependency }}",
                         "runbook": "A dependency fails the agent's health. First check: "
                                    "`keel check <env>` shows its error; then that service "
                                    "(PostgreSQL, Redis, the storage backend, the CLI)."}},
    ]}]


def cross_check(hosts) -> list:
    """Agent hosts are app hosts, with a fixed app uid and a server name for the edge."""
    from keel.core.data import Problem

    problems = []
    for h in hosts:
        if "agent" not in h.roles:
            continue
        if "storage" not in h.roles or "claude_cli" not in h.roles or "app" not in h.roles \
                or "edge" not in h.roles:
            problems.append(Problem(h.name, "keel_groups", h.inventory,
                                    "an agent host must also be in groups app and edge"))
            continue
        if h.values.get("storage_app_uid") is None:
            problems.append(Problem(h.name, "storage_app_uid", h.sources["storage_app_uid"],
                                    "the agent runs as the app user: set a fixed uid"))
        if h.values.get("claude_cli_uid") is None or not h.values.get("claude_cli_group_read"):
            problems.append(Problem(h.name, "claude_cli_uid", h.sources["claude_cli_uid"],
                                    "the agent runs with the claude group: set a fixed uid and "
                                    "claude_cli_group_read"))
        if h.values.get("agent_server_name") is None:
            problems.append(Problem(h.name, "agent_server_name", h.sources["agent_server_name"],
                                    "required key is missing: the name the edge serves the "
                                    "agent under"))
    return problems


def check(settings: Settings, name: str):
    """The agent answers /health on this host with every dependency healthy; never a change,
    a failure is loud."""
    url = f"http://127.0.0.1:{settings.agent_port}/health"
    probe = ("import json, urllib.request, urllib.error\n"
             "try:\n"
             f"    r = urllib.request.urlopen({url!r}, timeout=30); print(r.read().decode())\n"
             "except urllib.error.HTTPError as e:\n"
             "    print(e.read().decode()); raise SystemExit(1)\n")
    return live_check(name=name, command=StringCommand("python3", "-c", shlex.quote(probe)),
                      ok="the agent is healthy", failed="agent health failed", show_output=True)


def offers(settings: Settings) -> dict:
    """To storage: the agent's unit writes DATA_DIR, so a restore of it stops and starts it."""
    return {"data_units": [unit_name("agent")]}


@deploy("agent")
def apply(settings: Settings) -> None:
    check(settings, name="Check the agent's health")


ROLE = Role(name="agent", settings=Settings, apply=apply, groups=("agent",),
            metrics=metrics, alerts=alerts, cross_check=cross_check, declares=declares,
            offers=offers)
