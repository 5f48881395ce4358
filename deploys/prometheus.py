"""prometheus alone, on the mon group."""

from keel.site import apply_role

apply_role("prometheus")
