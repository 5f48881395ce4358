"""redis_exporter alone, on the cache group."""

from keel.deploy.site import apply_role

apply_role("redis_exporter")
