"""base alone, on every host."""

from keel.deploy.site import apply_role

apply_role("base")
