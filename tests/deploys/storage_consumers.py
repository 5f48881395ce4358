"""Test deploy: storage plus two stand-in services; only keel-test-app reads its environment.

KEEL_TEST_BASE=0 skips base and secrets (already applied) to keep backend switches quick.
"""

import os

from pyinfra.operations import files, systemd

from keel.ops import text
from keel.site import apply_role

UNIT = """[Unit]
After=keel-secrets.service
Wants=keel-secrets.service

[Service]
User=nobody
{env}ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""

if os.environ.get("KEEL_TEST_BASE", "1") == "1":
    apply_role("base")
    apply_role("secrets")
apply_role("storage")
for name, env in (("app", "EnvironmentFile=/run/keel/secrets/app/storage.env\n"), ("other", "")):
    unit = files.put(name=f"Unit keel-test-{name}", src=text(UNIT.format(env=env)),
                     dest=f"/etc/systemd/system/keel-test-{name}.service")
    systemd.service(name=f"Run keel-test-{name}", service=f"keel-test-{name}", running=True,
                    enabled=True, daemon_reload=unit.will_change)
