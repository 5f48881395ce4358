"""Schema for the secrets role's data."""

from keel.schema import RoleData


class Schema(RoleData):
    secrets_prune: bool
