"""An operation that changes on every run (keel_nonidempotent): idempotence must then fail."""

from pyinfra.operations import server

server.shell(
    name="Deliberately non-idempotent (keel_nonidempotent)",
    commands=["date +%s%N > /tmp/keel-molecule-nonidempotent"],
)
