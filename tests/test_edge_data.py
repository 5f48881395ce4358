"""Bad edge data stops a run before any host is contacted, naming host, key and file."""

import re

import pytest

from keel.lab.sandbox import Host

NOWHERE = Host("t-bad1", "198.51.100.250", False, "running")
UP = {"svc": {"group": "edge", "port": 8000}}
VHOST = {"name": "web", "server_name": "web.example.com", "upstream": "svc"}

CASES = {
    "unknown upstream": (
        {"edge_upstreams": UP, "edge_vhosts": [{**VHOST, "upstream": "nosuch", "tls": "acme"}]},
        "edge_vhosts[0].upstream", "'nosuch' is not in edge_upstreams (svc)"),
    "provided without secrets": (
        {"edge_upstreams": UP, "edge_vhosts": [{**VHOST, "tls": "provided"}]},
        "edge_vhosts[0]", "needs cert_secret and key_secret"),
    "internal CA missing": (
        {"edge_upstreams": UP, "edge_vhosts": [VHOST]},
        "edge_vhosts", "keel ca init sandbox"),
    "upstream group with no hosts": (
        {"edge_upstreams": {"svc": {"group": "nosuch", "port": 8000}},
         "edge_vhosts": [{**VHOST, "tls": "acme"}]},
        "edge_upstreams.svc.group", "no host is in group 'nosuch'"),
    "bad body size": (
        {"edge_upstreams": UP, "edge_vhosts": [{**VHOST, "tls": "acme",
                                                "client_max_body_size": "lots"}]},
        "edge_vhosts[0].client_max_body_size", "should match pattern"),
    "smoke path with a control character": (
        {"edge_upstreams": {"svc": {"group": "edge", "port": 8000,
                                    "smoke": {"path": "/health\x1b[2J"}}}},
        "edge_upstreams.svc.smoke.path", "(got '/health\\x1b[2J')"),
    "smoke path with a space": (
        {"edge_upstreams": {"svc": {"group": "edge", "port": 8000,
                                    "smoke": {"path": "/health; rm -rf /"}}}},
        "edge_upstreams.svc.smoke.path", "should match pattern"),
    "smoke method unknown": (
        {"edge_upstreams": {"svc": {"group": "edge", "port": 8000,
                                    "smoke": {"method": "BREW", "path": "/"}}}},
        "edge_upstreams.svc.smoke.method", "'GET'"),
    "smoke status out of range": (
        {"edge_upstreams": {"svc": {"group": "edge", "port": 8000,
                                    "smoke": {"path": "/", "status": 99}}}},
        "edge_upstreams.svc.smoke.status", "greater than or equal to 100"),
    "drain timeout as text": (
        {"edge_upstreams": {"svc": {"group": "edge", "port": 8000, "drain_timeout": "30"}}},
        "edge_upstreams.svc.drain_timeout", "valid integer"),
    "canary 5xx rate as a percentage": (
        {"edge_upstreams": {"svc": {"group": "edge", "port": 8000,
                                    "canary": {"max_5xx_rate": 5}}}},
        "edge_upstreams.svc.canary.max_5xx_rate", "less than or equal to 1"),
    "canary hold of zero": (
        {"edge_upstreams": {"svc": {"group": "edge", "port": 8000, "canary": {"hold": 0}}}},
        "edge_upstreams.svc.canary.hold", "greater than or equal to 1"),
}


@pytest.fixture
def without_ca(secrets_env):
    """The sandbox's CA secrets removed for the test (other modules may have made them)."""
    from keel.core import ca, store

    data = store.load("sandbox")
    saved = {name: data.pop(name) for name in (ca.KEY, ca.CERT) if name in data}
    store.save("sandbox", data)
    yield
    store.save("sandbox", {**store.load("sandbox"), **saved})


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_edge_data_fails_before_connecting(harness, case, without_ca):
    data, key, expected = CASES[case]
    inventory = harness.inventory({"edge": [NOWHERE]}, data=data, name=case.replace(" ", "_"))
    run = harness.run(inventory, "deploys/edge.py")
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    line = next((ln for ln in run.stderr.splitlines() if f"t-bad1: {key} " in ln), None)
    assert line, f"no error naming t-bad1 and {key}:\n{run.stderr}"
    assert expected in line, line


def test_alerts_use_the_metrics_the_script_writes():
    import re

    from keel import ROOT
    from roles.edge.alerts import EDGE_ALERTS

    script = (ROOT / "templates/edge/keel-edge-metrics.j2").read_text()
    assert {r["alert"] for r in EDGE_ALERTS["rules"]} >= {"EdgeHigh5xxRate",
                                                          "EdgeCertificateExpiresSoon"}
    for rule in EDGE_ALERTS["rules"]:
        names = re.findall(r"keel_edge_[a-z_]+", rule["expr"])
        assert names and all(name in script for name in names), rule["alert"]


def test_ca_issues_certificates_that_verify(secrets_env):
    from cryptography import x509

    from keel.core import ca

    root = x509.load_pem_x509_certificate(ca.init("sandbox", force=True).encode())
    _, pem = ca.issue("sandbox", ["a.internal"], ["10.0.0.5"], days=3)
    leaf = x509.load_pem_x509_certificate(pem)
    leaf.verify_directly_issued_by(root)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["a.internal"]
    with pytest.raises(Exception, match="already has a CA"):
        ca.init("sandbox")


@pytest.mark.parametrize("value, svc, expected", [
    ("150%", ["a1", "a2"], "--canary 150%: expected a share from 1% to 99%, or a host"),
    ("nosuch", ["a1", "a2"],
     "--canary nosuch: not a host of the group (a1, a2) nor a share such as 10%"),
    ("a2", ["a1"], "--canary: no edge upstream has a2 beside another server"),
])
def test_canary_argument_is_one_clear_error(value, svc, expected):
    from keel.cli.rollout import Route, _canary
    from keel.errors import KeelError
    from roles.edge.schema import Canary

    # Upstream svc's servers, and a2 alone behind upstream solo (its loopback).
    paths = [Route("e", "svc", h, f"10.0.0.{i}", 8000, 5, None, Canary())
             for i, h in enumerate(svc, 1)]
    paths.append(Route("e", "solo", "a2", "127.0.0.1", 8000, 5, None, Canary()))
    with pytest.raises(KeelError, match=re.escape(expected)):
        _canary(value, ["a1", "a2"], paths)


def test_rollout_on_an_edge_not_yet_converged_names_the_fix(monkeypatch, tmp_path):
    """An edge whose keel-edge predates `servers` (keel updated, edge not converged): one
    error naming the edge and the converge that fixes it, before any host is drained."""
    import subprocess

    from keel.cli import rollout
    from keel.errors import KeelError
    from roles.edge.schema import Canary

    usage = "keel-edge: usage: keel-edge drain SECONDS UPSTREAM:HOST... | undrain ..."
    monkeypatch.setattr(rollout, "_edge", lambda inventory, edge, *argv:
                        subprocess.CompletedProcess([], 1, stdout=usage, stderr=""))
    inv = tmp_path / "prod.py"
    paths = [rollout.Route("e1", "svc", "a1", "10.0.0.1", 8000, 5, None, Canary())]
    with pytest.raises(KeelError, match=re.escape(
            f"e1: its keel-edge has no `servers` command; converge the edge first: "
            f"pyinfra {inv} deploys/edge.py --limit e1")):
        rollout._reconcile(inv, paths, log=lambda m: None)
