"""Test deploy (tests/test_restic.py): secrets, storage (local DATA_DIR, which it declares to
restic) and restic on the app host. No base: the test refreshes its apt lists."""

from keel.deploy.site import apply_role

for name in ("secrets", "storage", "restic"):
    apply_role(name)
