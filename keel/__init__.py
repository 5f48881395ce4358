"""keel: configuration-as-code for the agent platform, on pyinfra."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


class _Delete:
    """The value of `keel.DELETE` (see DELETE)."""

    def __repr__(self) -> str:
        return "keel.DELETE"


# In a data layer: removes a sub-key that an earlier layer set in a key that merges, or
# resets a role's key to its default (keel/core/data.py).
DELETE = _Delete()
