"""app alone (services from data), on the app hosts. `keel rollout` runs it host by host."""

from keel.site import apply_role

apply_role("app")
