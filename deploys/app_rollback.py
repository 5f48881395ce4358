"""Roll services back to the definition they had before the data's current one.

`keel rollout INVENTORY --rollback` runs it host by host; see roles/app/README.md.
"""

from keel.deploy.site import apply_role
from roles.app.rollback import rollback

apply_role("app", rollback)
