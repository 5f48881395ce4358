"""keel: configuration-as-code for the agent platform, on pyinfra."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
