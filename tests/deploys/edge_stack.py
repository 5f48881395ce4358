"""Test deploy: pebble (Debian's ACME test server) on the acme hosts, then the ClaudeCodeProxy
stack (stand-in service + edge). pebble's own TLS certificate comes from the internal CA."""

import json
from io import BytesIO

from pyinfra import host, local
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, systemd

from keel import ROOT
from keel.core import ca
from keel.deploy.ops import text
from keel.deploy.site import apply_role

PEBBLE_UNIT = """[Unit]
Description=pebble ACME test server
After=network-online.target

[Service]
Environment=PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0
ExecStart=/usr/bin/pebble -config /etc/pebble/config.json

[Install]
WantedBy=multi-user.target
"""
CONFIG = {"pebble": {
    "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
    "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
    "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
    "externalAccountBindingRequired": False,
}}

apply_role("base")
apply_role("secrets")
if "acme" in host.groups:
    apt.packages(name="Install pebble", packages=["pebble"], no_recommends=True)
    files.put(name="pebble config", src=text(json.dumps(CONFIG)), dest="/etc/pebble/config.json",
              create_remote_dir=True)
    if host.get_fact(File, path="/etc/pebble/cert.pem") is None:
        key, cert = ca.issue(host.data.keel_env, [host.name], [host.data.keel_address])
        files.put(name="pebble TLS key", src=BytesIO(key), dest="/etc/pebble/key.pem",
                  mode="0600")
        files.put(name="pebble TLS certificate", src=BytesIO(cert), dest="/etc/pebble/cert.pem")
    unit = files.put(name="pebble unit", src=text(PEBBLE_UNIT),
                     dest="/etc/systemd/system/pebble.service")
    systemd.service(name="Run pebble", service="pebble", running=True, enabled=True,
                    daemon_reload=unit.will_change)
local.include(str(ROOT / "examples/claudecodeproxy/stack.py"))
