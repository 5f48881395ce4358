"""postgres_exporter alone, on the db group."""

from keel.site import apply_role

apply_role("postgres_exporter")
