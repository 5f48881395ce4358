"""Data for database hosts, in every environment."""

# PostgreSQL logs to the journal: keep more of it.
base_journald_max_use = "500M"
