"""Test deploy: a file that carries a secret among other settings (tests/test_envs.py)."""

from keel.core.secrets import SecretFile
from keel.deploy.secrets import deliver
from keel.deploy.site import apply_role

apply_role("secrets")
deliver(name="Deliver the test service's env file", file=SecretFile(
    dest="test/app.env", template="tests/templates/app-env.j2", uses=("test_token",)))
