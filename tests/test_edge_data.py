"""Bad edge data stops a run before any host is contacted, naming host, key and file."""

import pytest

from keel.sandbox import Host

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
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_edge_data_fails_before_connecting(harness, case):
    data, key, expected = CASES[case]
    inventory = harness.inventory({"edge": [NOWHERE]}, data=data, name=case.replace(" ", "_"))
    run = harness.run(inventory, "deploys/edge.py")
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    line = next((ln for ln in run.stderr.splitlines() if f"t-bad1: {key} " in ln), None)
    assert line, f"no error naming t-bad1 and {key}:\n{run.stderr}"
    assert expected in line, line
