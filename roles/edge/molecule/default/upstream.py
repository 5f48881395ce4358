"""The edge scenario's upstream, a peer deploy: static files over HTTP on port 8000 of the app
hosts (GET /health answers 200), enough for nginx to proxy to."""

from pyinfra import host
from pyinfra.operations import files, systemd

from keel.deploy.ops import text

UNIT = """[Unit]
Description=edge scenario upstream (static files)

[Service]
User=nobody
ExecStart=/usr/bin/python3 -m http.server 8000 --directory /srv/upstream

[Install]
WantedBy=multi-user.target
"""

if "app" in host.groups:
    files.put(name="Upstream health page", src=text("ok\n"), dest="/srv/upstream/health",
              mode="0644", create_remote_dir=True)
    unit = files.put(name="Upstream unit", src=text(UNIT),
                     dest="/etc/systemd/system/edge-upstream.service")
    systemd.service(name="Run the upstream", service="edge-upstream", running=True,
                    enabled=True, daemon_reload=unit.will_change)
