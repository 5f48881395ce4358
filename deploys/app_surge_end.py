"""Stop the surge copies once the services run the new definition (keel rollout)."""

from keel.deploy.site import apply_role
from roles.app import surge

apply_role("app", surge.stop)
