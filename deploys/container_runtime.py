"""container_runtime alone, on the app hosts."""

from keel.deploy.site import apply_role

apply_role("container_runtime")
