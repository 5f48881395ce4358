"""redis alone, on cache hosts."""

from keel.deploy.site import apply_role

apply_role("redis")
