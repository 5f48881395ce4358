"""The sandbox environment: local podman hosts (keel sandbox up prod)."""

from keel.sandbox import debian_mirror

# Hosts install from the same mirror the controller uses.
base_apt_mirror = debian_mirror()
