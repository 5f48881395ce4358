"""redis alone, on cache hosts."""

from keel.site import apply_role

apply_role("redis")
