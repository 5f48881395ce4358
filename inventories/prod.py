"""prod: two app hosts, a database, a cache and monitoring.

keel reaches hosts over SSH by DNS name; `keel_address` is each host's private address, which
other hosts' configuration uses (firewall sources, /etc/hosts, database access, scrape targets).
"""

from keel.core.inventory import groups

globals().update(groups("prod", {
    "app": [
        ("app1", {"ssh_hostname": "app1.prod.example.net", "keel_address": "10.20.1.11"}),
        ("app2", {"ssh_hostname": "app2.prod.example.net", "keel_address": "10.20.1.12"}),
    ],
    # The agent (roles/agent) on each app host, behind nginx on the same host.
    "agent": ["app1", "app2"],
    "edge": ["app1", "app2"],
    "db": [("db1", {"ssh_hostname": "db1.prod.example.net", "keel_address": "10.20.2.11"})],
    "cache": [
        ("cache1", {"ssh_hostname": "cache1.prod.example.net", "keel_address": "10.20.3.11"}),
    ],
    "mon": [("mon1", {"ssh_hostname": "mon1.prod.example.net", "keel_address": "10.20.4.11"})],
}, source=__file__))
