"""Test deploy (tests/test_storage.py): an app host runs storage, claude_cli and a real app
whose service reads both env-files; the db host runs postgres and redis (no base: the test
refreshes its apt lists; its moto server must stay reachable).

KEEL_TEST_BASE=0 skips base and secrets (already applied) to keep backend switches quick.
"""

import os

from pyinfra import host

from keel.deploy.site import apply_role

ROLES = ("storage", "claude_cli", "container_runtime", "app", "postgres", "redis")

if os.environ.get("KEEL_TEST_BASE", "1") == "1":
    if "app" in host.data.keel_groups:
        apply_role("base")
    apply_role("secrets")
for name in ROLES:
    apply_role(name)
