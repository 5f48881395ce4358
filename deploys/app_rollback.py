"""Roll services back to the definition they had before the data's current one.

`keel rollout INVENTORY --rollback` runs it host by host; see roles/app/README.md.
"""

from pyinfra import host

from roles.app import rollback

if "app" in host.data.keel_roles:
    rollback()
