"""Test data for base: used by the suite (tests/test_base.py) and the molecule scenario."""

base_timezone = "Europe/Berlin"
base_admin_users = [
    {"name": "alice", "ssh_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaWm5S7xuvXkD5SmB9dUb0hGE8PfZ5j6LRrwXtUu9bC alice@t"
    ]},
]
base_journald_max_use = "100M"
base_firewall_ports = [
    {"port": 8080, "sources": ["group:peers"], "comment": "test: peers only"},
    {"port": 8082, "comment": "test: anyone"},
]
