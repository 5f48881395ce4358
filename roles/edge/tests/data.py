"""Test data for edge (tests/test_edge.py): one vhost per certificate source, in front of the
ClaudeCodeProxy stand-in on two app hosts. The test adds edge_acme (pebble's URL and CA)."""

edge_upstreams = {"claudecodeproxy": {"group": "app", "port": 8000, "fail_timeout": "5s"}}
edge_vhosts = [
    {"name": "proxy", "server_name": "proxy.sandbox.internal", "upstream": "claudecodeproxy",
     "tls": "internal", "client_max_body_size": "1m",
     "rate_limit": {"rate": "100r/s", "burst": 100}},
    {"name": "provided", "server_name": "provided.sandbox.test", "upstream": "claudecodeproxy",
     "tls": "provided", "cert_secret": "edge_provided_cert", "key_secret": "edge_provided_key"},
    # pebble validates http-01 on port 80 of this name: the edge host itself.
    {"name": "acme", "server_name": "x-app1", "upstream": "claudecodeproxy", "tls": "acme"},
]
edge_metrics_interval = "10s"
base_firewall_ports = [
    {"port": 8000, "sources": ["group:edge"], "comment": "claudecodeproxy"},
    {"port": 14000, "comment": "pebble ACME (acme host)"},
    {"port": 15000, "comment": "pebble management (acme host)"},
]
