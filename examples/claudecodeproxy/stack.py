"""The stack itself, after base and secrets (deploy.py): the stand-in proxy service on the
app hosts with its secrets, then the edge in front of it."""

from pathlib import Path

from pyinfra import host
from pyinfra.operations import files, server, systemd

from keel.core.secrets import SecretFile
from keel.deploy.secrets import deliver
from keel.deploy.site import apply_role

HERE = Path(__file__).parent
ENV = SecretFile(dest="claudecodeproxy/env", template="examples/claudecodeproxy/proxy.env.j2",
                 uses=("claudecodeproxy_admin_password", "claudecodeproxy_key_hasher_secret"),
                 context={"admin_username": "admin"}, owner="ccproxy", group="ccproxy",
                 mode="0400")

if "app" in host.groups:
    server.user(name="ccproxy service user", user="ccproxy", system=True, shell="/usr/sbin/nologin",
                home="/nonexistent", create_home=False)
    code = files.put(name="Install the ClaudeCodeProxy stand-in", src=str(HERE / "standin.py"),
                     dest="/usr/local/lib/keel/claudecodeproxy-standin.py", mode="0755",
                     create_remote_dir=True)
    unit = files.put(name="ClaudeCodeProxy stand-in unit", src=str(HERE / "standin.service"),
                     dest="/etc/systemd/system/claudecodeproxy.service")
    env = deliver(name="Deliver ClaudeCodeProxy admin and HMAC secrets", file=ENV)
    systemd.service(name="Run ClaudeCodeProxy", service="claudecodeproxy", running=True,
                    enabled=True, daemon_reload=unit.will_change)
    systemd.service(name="Restart ClaudeCodeProxy on change", service="claudecodeproxy",
                    restarted=True, _if=lambda: code.did_change() or env.did_change())
apply_role("edge")
