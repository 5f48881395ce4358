"""claude_cli's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keel.core.schema import Model, MultiLine, Name, RoleSettings, SecretName

# A tool rule such as "Read" or "Bash(git diff:*)"; DEFAULT_ALLOWED_TOOLS joins them with ",".
Tool = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\([^,\n]*\))?$")]
Version = Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]


class Subagent(Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
    description: Annotated[str, Field(min_length=1)]
    prompt: Annotated[MultiLine, Field(min_length=1)]
    tools: list[Tool] = []
    model: Annotated[str, Field(min_length=1)] | None = None


class Settings(RoleSettings):
    claude_cli_version: Version = Field(
        "2.1.328",
        description=(
            "Pinned @anthropic-ai/claude-code version; changing it upgrades (and removes "
            "the old one)."
        ),
    )
    claude_cli_registry: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = Field(
        "https://registry.npmjs.org",
        description=(
            "npm registry (or a mirror of it) the host fetches the package metadata and "
            "tarball from."
        ),
    )
    claude_cli_cache_dir: Annotated[str, Field(pattern=r"^/[^\s]*$")] | None = Field(
        None,
        description=(
            "Directory on the host that keeps downloaded tarballs (verified before use); "
            "None: no cache."
        ),
    )
    claude_cli_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9._\[\]-]+$")] = Field(
        "sonnet", description='Default model (settings.json "model", the app\'s DEFAULT_MODEL).'
    )
    claude_cli_allowed_tools: list[Tool] = Field(
        ["Read", "Edit", "Bash", "Glob", "Grep", "Write"],
        description=(
            "Tools allowed without a prompt (settings.json permissions.allow, "
            "DEFAULT_ALLOWED_TOOLS)."
        ),
    )
    claude_cli_denied_tools: list[Tool] = Field(
        [], description="Tools always refused (settings.json permissions.deny)."
    )
    claude_cli_enable_subagents: bool = Field(
        True, description="Sub-agents on (ENABLE_SUBAGENTS); off removes the agent files."
    )
    claude_cli_subagents: list[Subagent] = Field(
        [],
        description=(
            "Sub-agents: [{name, description, prompt, tools?: [..], model?}] -> "
            "~claude/.claude/agents/."
        ),
    )
    claude_cli_auth: Literal["api_key", "oauth_token", "none"] = Field(
        "none",
        description=(
            'Auth: "api_key" (ANTHROPIC_API_KEY), "oauth_token" (CLAUDE_CODE_OAUTH_TOKEN) '
            'or "none" (no credential until an environment sets one: inventories work '
            "without the secret)."
        ),
    )
    claude_cli_auth_secret: SecretName = Field(
        "claude_api_key", description="Name of the secret holding the key or token."
    )
    claude_cli_uid: Annotated[int, Field(ge=1, le=65533)] | None = Field(
        None,
        description=(
            "Fixed uid (and gid) of the claude user, so a container can be given its group; "
            "None: the system picks one."
        ),
    )
    claude_cli_group_read: bool = Field(
        False,
        description=(
            "Let the claude group read the CLI's settings, sub-agents and credential (a "
            "container that runs the CLI with that group, like the agent's, needs it)."
        ),
    )
    claude_cli_callers: list[Name] = Field(
        [], description="Users allowed to run claude-headless (through sudo, as the claude user)."
    )
