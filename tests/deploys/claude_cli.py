"""Test deploy: base, secrets and claude_cli (storage is tested on its own)."""

from keel.deploy.site import apply_role

apply_role("base")
apply_role("secrets")
apply_role("claude_cli")
