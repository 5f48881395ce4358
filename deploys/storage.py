"""storage alone, on the hosts of its groups (the secrets role must have run once)."""

from keel.deploy.site import apply_role

apply_role("storage")
