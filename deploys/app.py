"""app alone (services from data), on the app hosts. `keel rollout` runs it host by host."""

from keel.deploy.site import apply_role

apply_role("app")
