"""Schema for claude_cli's data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keel.schema import Model, Name, RoleData

# A tool rule such as "Read" or "Bash(git diff:*)"; DEFAULT_ALLOWED_TOOLS joins them with ",".
Tool = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\([^,\n]*\))?$")]
Version = Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]
SecretName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Subagent(Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
    description: Annotated[str, Field(min_length=1)]
    prompt: Annotated[str, Field(min_length=1)]
    tools: list[Tool] = []
    model: Annotated[str, Field(min_length=1)] | None = None


class Schema(RoleData):
    claude_cli_version: Version
    claude_cli_registry: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    claude_cli_cache_dir: Annotated[str, Field(pattern=r"^/[^\s]*$")] | None
    claude_cli_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9._\[\]-]+$")]
    claude_cli_allowed_tools: list[Tool]
    claude_cli_denied_tools: list[Tool]
    claude_cli_enable_subagents: bool
    claude_cli_subagents: list[Subagent]
    claude_cli_auth: Literal["api_key", "oauth_token", "none"]
    claude_cli_auth_secret: SecretName
    claude_cli_callers: list[Name]
