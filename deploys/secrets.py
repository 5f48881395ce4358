"""The secrets role alone: host identity and the decrypt unit, on every host."""

from keel.deploy.site import apply_role

apply_role("secrets")
