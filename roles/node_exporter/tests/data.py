"""Test data for node_exporter (its molecule scenario): app services' unit states too."""

node_exporter_systemd_units = "(app-.+|ssh)\\.service"
