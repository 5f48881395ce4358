"""postgres alone, on db hosts."""

from keel.site import apply_role

apply_role("postgres")
