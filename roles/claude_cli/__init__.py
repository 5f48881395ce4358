"""claude_cli: the Claude Code CLI, pinned, for a dedicated user, and its headless wrapper."""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FindFiles
from pyinfra.operations import apt, files, server

from keel.core.roles import Role
from keel.core.secrets import SecretFile
from keel.deploy.ops import config_file, managed_file, restart_readers
from keel.deploy.secrets import deliver
from roles.claude_cli.schema import Settings

USER = "claude"
HOME = "/var/lib/claude"
OPT = "/opt/claude-code"
BIN = "/usr/local/bin/claude"
WRAPPER = "/usr/local/bin/claude-headless"
INSTALLER = "/usr/local/sbin/keel-claude-install"
# The app's Claude defaults (no secrets in it): the app unit reads it with EnvironmentFile=.
APP_ENV = "/etc/keel/app/claude-cli.env"
AUTH_ENV = {"api_key": "ANTHROPIC_API_KEY", "oauth_token": "CLAUDE_CODE_OAUTH_TOKEN"}
# keel pins the version: no self-updates, and no traffic beyond the API calls themselves.
CLI_ENV = {"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def _mode(settings: Settings, private: str) -> str:
    """A file's or directory's mode: the group reads too with claude_cli_group_read."""
    if not settings.claude_cli_group_read:
        return private
    return private[:2] + ("5" if private[1] == "7" else "4") + private[3]


def secrets(settings: Settings) -> list[SecretFile]:
    if settings.claude_cli_auth == "none":
        return []
    return [SecretFile(dest="claude/auth", secret=settings.claude_cli_auth_secret, owner=USER,
                       group=USER, mode=_mode(settings, "0400"))]


def offers(settings: Settings) -> dict:
    """For roles that run the CLI in a container (the agent): the pinned binary, the settings
    directory (and its mode), the credential's secret and variable, the env-file, the claude
    uid when it is fixed and its group may read."""
    auth = settings.claude_cli_auth != "none"
    return {"bin": f"{OPT}/{settings.claude_cli_version}/claude", "config_dir": f"{HOME}/.claude",
            "config_mode": _mode(settings, "0700").lstrip("0"),
            "auth_secret": settings.claude_cli_auth_secret if auth else None,
            "auth_env": AUTH_ENV.get(settings.claude_cli_auth), "env_file": APP_ENV,
            "uid": settings.claude_cli_uid if settings.claude_cli_group_read else None}


def settings_json(settings: Settings) -> str:
    return json.dumps({
        "model": settings.claude_cli_model,
        "permissions": {"allow": settings.claude_cli_allowed_tools,
                        "deny": settings.claude_cli_denied_tools},
        "env": CLI_ENV,
    }, indent=2) + "\n"


@deploy("claude_cli")
def apply(settings: Settings) -> None:
    version = settings.claude_cli_version
    apt.packages(name="Install the installer's tools", packages=["ca-certificates", "python3"],
                 no_recommends=True)
    uid = settings.claude_cli_uid
    if uid is not None:
        server.group(name=f"CLI group {USER}", group=USER, gid=uid, system=True)
    server.user(name=f"CLI user {USER}", user=USER, system=True, home=HOME,
                shell="/usr/sbin/nologin", create_home=False, uid=uid,
                group=USER if uid is not None else None)
    files.directory(name=f"{USER}'s home", path=HOME, user=USER, group=USER, mode="0750")

    config_file("claude_cli", "keel-claude-install", INSTALLER, mode="0755",
                name="Install the Claude Code installer", opt=OPT, settings=settings)
    if settings.claude_cli_cache_dir:
        files.directory(name="Claude Code download cache", path=settings.claude_cli_cache_dir,
                        mode="0700")
    if host.get_fact(File, path=f"{OPT}/{version}/claude") is None:
        server.shell(name=f"Install Claude Code {version}",
                               commands=[f"{INSTALLER} {version}"])
    files.link(name=f"claude -> {version}", path=BIN, target=f"{OPT}/{version}/claude")
    others = [p for p in host.get_fact(FindFiles, path=OPT, maxdepth=2, fname="claude")
              if p != f"{OPT}/{version}/claude"]
    if others:
        server.shell(name="Remove other Claude Code versions",
                     commands=[f"rm -rf {p.rsplit('/', 1)[0]}" for p in others])

    dot = f"{HOME}/.claude"
    files.directory(name="~claude/.claude", path=dot, user=USER, group=USER,
                    mode=_mode(settings, "0700"))
    managed_file(name="~claude/.claude/settings.json", content=settings_json(settings),
                 dest=f"{dot}/settings.json", user=USER, group=USER, mode=_mode(settings, "0600"))
    _agents(settings, f"{dot}/agents")

    for file in secrets(settings):
        deliver(name="Deliver the Claude credential", file=file)
    config_file("claude_cli", "claude-headless", WRAPPER, mode="0755",
                name="Install claude-headless", wrapper=WRAPPER, user_name=USER, home=HOME, bin=BIN,
                auth_file=secrets(settings)[0].path if secrets(settings) else None,
                auth_env=AUTH_ENV.get(settings.claude_cli_auth), cli_env=CLI_ENV)
    if settings.claude_cli_callers:
        apt.packages(name="Install sudo", packages=["sudo"], no_recommends=True)
    managed_file(name="Allow callers to run claude-headless", dest="/etc/sudoers.d/keel-claude-cli",
                 content="".join(f"{u} ALL=({USER}) NOPASSWD: {WRAPPER}\n"
                                 for u in settings.claude_cli_callers) or "# no callers\n",
                 mode="0440")
    app_env = config_file("claude_cli", "app.env", APP_ENV,
                          name="The app's Claude CLI settings", wrapper=WRAPPER, settings=settings)
    restart_readers(name="Restart the services that read the Claude CLI settings", path=APP_ENV,
                    _if=app_env.did_change)


def _agents(settings: Settings, path: str) -> None:
    files.directory(name="~claude/.claude/agents", path=path, user=USER, group=USER,
                    mode=_mode(settings, "0700"))
    wanted = {a.name: a for a in settings.claude_cli_subagents} \
        if settings.claude_cli_enable_subagents else {}
    for name, agent in wanted.items():
        config_file("claude_cli", "agent.md", f"{path}/{name}.md", name=f"Sub-agent {name}",
                    user=USER, group=USER, mode=_mode(settings, "0600"), agent=agent)
    stale = [p for p in host.get_fact(FindFiles, path=path, maxdepth=1, fname="*.md")
             if p.rsplit("/", 1)[1][:-3] not in wanted]
    for stale_path in stale:
        files.file(name=f"Remove sub-agent {stale_path}", path=stale_path, present=False)


ROLE = Role(name="claude_cli", settings=Settings, apply=apply, groups=("app",), secrets=secrets,
            offers=offers)
