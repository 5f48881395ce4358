"""container_runtime alone, on the app hosts."""

from keel.site import apply_role

apply_role("container_runtime")
