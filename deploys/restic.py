"""restic alone, on app hosts."""

from keel.deploy.site import apply_role

apply_role("restic")
