"""Test deploy: what an app host needs to run containers (base, secrets, container_runtime,
app), without the app group's other roles (storage, claude_cli), which have their own tests;
and the edge in front of them on edge hosts (releases through it: keel rollout)."""

from keel.deploy.site import apply_role

for role in ("base", "secrets", "container_runtime", "app", "edge"):
    apply_role(role)
