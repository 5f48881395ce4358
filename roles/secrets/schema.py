"""The secrets role's settings: each key's type, default and description."""

from pydantic import Field

from keel.core.schema import RoleSettings


class Settings(RoleSettings):
    secrets_prune: bool = Field(
        True,
        description=(
            "Remove secrets the host's roles no longer declare (encrypted copy and /run copy)."
        ),
    )
