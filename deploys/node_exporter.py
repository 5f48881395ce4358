"""node_exporter alone, on every host."""

from keel.deploy.site import apply_role

apply_role("node_exporter")
