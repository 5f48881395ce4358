"""postgres_exporter alone, on the db group."""

from keel.deploy.site import apply_role

apply_role("postgres_exporter")
