"""Start the data's new definition of surged services beside the running ones (keel rollout,
where a host is its edge upstream's only server); see roles/app/README.md."""

from keel.deploy.site import apply_role
from roles.app import surge

apply_role("app", surge.start)
