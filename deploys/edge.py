"""The edge role alone: nginx TLS front on the edge group (needs base and secrets applied)."""

from keel.deploy.site import apply_role

apply_role("edge")
