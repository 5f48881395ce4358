"""Test deploy: two services, each consuming its own secret, restarted when it changes."""

from pyinfra.operations import files, systemd

from keel.core.secrets import SecretFile
from keel.deploy.ops import text
from keel.deploy.secrets import deliver
from keel.deploy.site import apply_role

UNIT = """[Unit]
After=keel-secrets.service
Wants=keel-secrets.service

[Service]
User=nobody
ExecStart=/bin/sh -c 'test -s /run/keel/secrets/test/{name} && exec sleep infinity'

[Install]
WantedBy=multi-user.target
"""

apply_role("base")
apply_role("secrets")
for name in ("alpha", "beta"):
    unit = files.put(name=f"Unit keel-test-{name}", src=text(UNIT.format(name=name)),
                     dest=f"/etc/systemd/system/keel-test-{name}.service")
    secret = deliver(name=f"Deliver test_{name}", file=SecretFile(
        dest=f"test/{name}", secret=f"test_{name}", owner="nobody", group="nogroup"))
    systemd.service(name=f"Run keel-test-{name}", service=f"keel-test-{name}", running=True,
                    enabled=True,
                    daemon_reload=unit.will_change)
    systemd.service(name=f"Restart keel-test-{name} on rotation", service=f"keel-test-{name}",
                    restarted=True, _if=secret.did_change)
deliver(name="Deliver a rendered env file", file=SecretFile(
    dest="test/env", template="tests/templates/secret-env.j2", uses=("test_alpha", "test_beta"),
    mode="0440"))
