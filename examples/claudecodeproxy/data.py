"""ClaudeCodeProxy reference stack, example data (a group_data layer or a data file).

The proxy service listens on :8000 on every app host; the edge (nginx) terminates TLS on
:443 in front of it and forwards to all app hosts. Secrets (secrets/<env>.yaml):
claudecodeproxy_admin_password, claudecodeproxy_key_hasher_secret (HMAC server secret).
"""

edge_upstreams = {
    # service name -> published port on the hosts of a group (the app role's published port)
    "claudecodeproxy": {"group": "app", "port": 8000, "max_fails": 3, "fail_timeout": "10s"},
}
edge_vhosts = [
    {
        "name": "proxy",
        "server_name": "proxy.example.com",
        "upstream": "claudecodeproxy",
        # acme in production; internal for private networks and the sandbox.
        "tls": "acme",
        # Prompts and file uploads; model responses stream back as server-sent events.
        "client_max_body_size": "32m",
        "read_timeout": "3600s",
        "rate_limit": {"rate": "20r/s", "burst": 40},
    },
]
edge_acme = {"server": "https://acme-v02.api.letsencrypt.org/directory",
             "email": "ops@example.com"}
# The proxy port is reachable only from the edge hosts.
base_firewall_ports = [{"port": 8000, "sources": ["group:edge"], "comment": "claudecodeproxy"}]
