"""Test data for alertmanager (its molecule scenario and tests/test_monitoring.py): short
windows, critical alerts to a webhook on the Alertmanager host's loopback (the test runs the
receiver), warnings by email through a smarthost that needs a login (its password a secret)."""

alertmanager_receivers = [
    {"name": "default"},
    {"name": "hook", "webhook_urls": ["http://127.0.0.1:9199/hook"]},
    {"name": "mail", "email_to": ["ops@example.net"]},
]
alertmanager_routes = [
    {"severity": "critical", "receiver": "hook"},
    {"severity": "warning", "receiver": "mail"},
]
alertmanager_group_wait = "1s"
alertmanager_group_interval = "2s"
alertmanager_smtp = {"smarthost": "127.0.0.1:2525", "from": "keel@example.net",
                     "username": "keel", "password_secret": "alertmanager_smtp_password"}
