"""agent alone, on agent hosts (its service, vhost and logins come through app, edge, storage)."""

from keel.deploy.site import apply_role

apply_role("agent")
