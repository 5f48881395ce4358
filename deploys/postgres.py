"""postgres alone, on db hosts."""

from keel.deploy.site import apply_role

apply_role("postgres")
