"""Data for the monitoring host, in every environment."""

# Prometheus and the alert pipeline log to the journal: keep more of it.
base_journald_max_use = "1G"
