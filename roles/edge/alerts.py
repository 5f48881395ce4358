"""Prometheus alert rules for the keel_edge_* metrics (keel-edge-metrics, textfile collector).

One rule group in the shape of the prometheus role's `prometheus_rules` entries. The edge
role declares it (`alerts()`), so Prometheus loads it whenever the inventory has edge hosts.

`python -m roles.edge.alerts` prints it as a Prometheus rules file.
"""

EDGE_ALERTS = {
    "name": "keel-edge",
    "rules": [
        {
            "alert": "EdgeHigh5xxRate",
            "expr": 'sum by (instance, vhost) (rate(keel_edge_responses_total{code="5xx"}[5m]))'
                    " / sum by (instance, vhost) (rate(keel_edge_responses_total[5m])) > 0.05",
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "runbook": "The upstream app fails requests. "
                           "First check: the app service's health (keel status) and "
                           "nginx's error log on that host.",
                "summary": "{{ $labels.vhost }} on {{ $labels.instance }}: "
                           "over 5% of responses are 5xx"},
        },
        {
            "alert": "EdgeCertificateExpiresSoon",
            "expr": "keel_edge_cert_not_after_seconds - time() < 14 * 86400",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "runbook": "Certificate renewal is failing. "
                           "First check: journalctl -u certbot (ACME), or re-run the edge "
                           "deploy (internal CA).",
                "summary": "{{ $labels.vhost }} ({{ $labels.source }}) certificate "
                           "expires in under 14 days: renewal is failing"},
        },
        {
            "alert": "EdgeCertificateExpired",
            "expr": "keel_edge_cert_not_after_seconds - time() < 0",
            "labels": {"severity": "critical"},
            "annotations": {
                "runbook": "Clients now refuse the vhost. "
                           "First check: renew now (edge deploy, or certbot renew) and "
                           "reload nginx.",
                "summary": "{{ $labels.vhost }} ({{ $labels.source }}) certificate "
                           "has expired"},
        },
        {
            "alert": "EdgeMetricsStale",
            "expr": "time() - keel_edge_metrics_last_run_seconds > 900",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "runbook": "keel-edge-metrics stopped running. "
                           "First check: systemctl list-timers keel-edge-metrics and its journal.",
                "summary": "keel-edge-metrics on {{ $labels.instance }} has not "
                           "run for 15 minutes"},
        },
    ],
}

if __name__ == "__main__":
    import yaml

    print(yaml.safe_dump({"groups": [EDGE_ALERTS]}, sort_keys=False, width=1000), end="")
