"""Test data for the monitoring roles (tests/test_monitoring.py): short windows."""

prometheus_scrape_interval = "2s"
prometheus_evaluation_interval = "2s"
prometheus_retention_time = "2d"
prometheus_alert_for = {"RedisDown": "4s", "PostgresDown": "4s", "TargetDown": "30s"}
