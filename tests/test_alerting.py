"""Alert rules reach someone: every rule keel ships carries a runbook line, and Alertmanager's
config follows its data (no secret in it). The delivery itself (a stopped service, a webhook on
a sandbox host, firing then resolved) is in tests/test_monitoring.py, on its converged hosts."""

import importlib

import pytest
import yaml

from keel.core.render import render
from keel.core.roles import role, roles
from roles.alertmanager import config
from roles.alertmanager.schema import Settings as AlertmanagerSettings
from roles.prometheus import keel_rules


def _defaults(name: str):
    return role(name).settings.model_validate(role(name).defaults)


def _shipped_rules() -> list[tuple[str, dict]]:
    """(where, rule) for every alert rule keel ships: its own rules file and every role's
    `alerts` hook."""
    keel = yaml.safe_load(render("prometheus", "keel.rules.yml",
                                 **keel_rules(_defaults("prometheus"))))
    groups = [("templates/prometheus/keel.rules.yml.j2", g) for g in keel["groups"]]
    groups += [(f"roles/{each.name} alerts()", g) for each in roles() for g in each.alerts()]
    return [(where, rule) for where, group in groups for rule in group["rules"]
            if "alert" in rule]


def test_every_shipped_alert_has_a_runbook():
    rules = _shipped_rules()
    assert len(rules) >= 16
    missing = [f"{where}: {rule['alert']}" for where, rule in rules
               if "First check:" not in rule.get("annotations", {}).get("runbook", "")]
    assert not missing, "rules without a runbook annotation ('... First check: ...'): " + \
        ", ".join(missing)


def test_runbook_check_catches_a_rule_without_one(monkeypatch):
    alerts = importlib.import_module("roles.edge.alerts")
    bare = {"alert": "NoRunbook", "expr": "up == 0", "annotations": {"summary": "s"}}
    monkeypatch.setitem(alerts.EDGE_ALERTS, "rules", [*alerts.EDGE_ALERTS["rules"], bare])
    with pytest.raises(AssertionError, match="edge alerts\\(\\): NoRunbook"):
        test_every_shipped_alert_has_a_runbook()


def test_config_routes_by_severity_and_keeps_the_smtp_password_out(monkeypatch):
    settings = AlertmanagerSettings.model_validate({**role("alertmanager").defaults,
        "alertmanager_receivers": [{"name": "default"},
                                   {"name": "pager", "webhook_urls": ["http://10.0.0.9/hook"]},
                                   {"name": "mail", "email_to": ["ops@example.net"]}],
        "alertmanager_routes": [{"severity": "critical", "receiver": "pager", "continue": True},
                                {"severity": "critical", "receiver": "mail"},
                                {"severity": "warning", "receiver": "mail",
                                 "repeat_interval": "12h"}],
        "alertmanager_smtp": {"smarthost": "smtp.example.net:587", "from": "keel@example.net",
                              "username": "keel", "password_secret": "smtp_password"},
    })
    body = yaml.safe_load(config(settings))
    routes = body["route"]["routes"]
    assert [(r["receiver"], r["matchers"]) for r in routes] == [
        ("pager", ['severity="critical"']), ("mail", ['severity="critical"']),
        ("mail", ['severity="warning"'])]
    assert routes[0]["continue"] is True and routes[2]["repeat_interval"] == "12h"
    assert body["route"]["group_by"] == ["alertname", "host"]
    assert body["inhibit_rules"] == [{"source_matchers": ['severity="critical"'],
                                      "target_matchers": ['severity="warning"'],
                                      "equal": ["alertname", "host"]}]
    assert body["global"]["smtp_auth_password_file"] == \
        "/run/keel/secrets/alertmanager/smtp_password"
    assert "smtp_auth_password" not in body["global"]


@pytest.mark.parametrize("data, error", [
    ({"alertmanager_routes": [{"severity": "critical", "receiver": "pager"}]},
     "receiver 'pager' is not in alertmanager_receivers"),
    ({"alertmanager_receivers": [{"name": "default"}, {"name": "m", "email_to": ["a@b.c"]}]},
     "an email receiver \\(email_to\\) needs a smarthost"),
    ({"alertmanager_smtp": {"smarthost": "smtp:25", "from": "a@b.c", "username": "u"}},
     "username and password_secret go together"),
])
def test_data_mistakes_are_refused(data, error):
    with pytest.raises(ValueError, match=error):
        AlertmanagerSettings.model_validate({**role("alertmanager").defaults, **data})
