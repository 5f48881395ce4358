"""ClaudeCodeProxy reference stack: the stand-in proxy service on the app hosts (its secrets
delivered by keel.deploy.secrets), then the edge in front of it. With data.py as data:

    pyinfra inventories/<env>.py examples/claudecodeproxy/deploy.py

Once the app role (containers) and postgres role (data) land, the stand-in is replaced by an
app_services entry and the stack's database by postgres_* data (see README.md).
"""

from pathlib import Path

from pyinfra import local

from keel.deploy.site import apply_role

apply_role("base")
apply_role("secrets")
local.include(str(Path(__file__).parent / "stack.py"))
