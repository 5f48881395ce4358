"""The app group: hosts that run the platform's services (systemd units app-<service>)."""

# The node exporter reports these units' state and restarts (alerts ServiceDown/Restarting).
node_exporter_systemd_units = r"app-.+\.service"
# ... and their containers' health checks (alert ServiceUnhealthy).
node_exporter_service_health = True
