"""Test deploy: the data roles with the secrets role they need, on their hosts only. No base:
the tests refresh apt lists themselves, and other hosts are only read (inventory addresses)."""

from pyinfra import host

from keel.deploy.site import apply_role

DATA_ROLES = ("postgres", "redis")

if set(DATA_ROLES) & set(host.data.keel_roles):
    apply_role("secrets")
    for name in DATA_ROLES:
        apply_role(name)
