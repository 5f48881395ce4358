"""alertmanager alone, on the mon group."""

from keel.deploy.site import apply_role

apply_role("alertmanager")
