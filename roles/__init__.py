"""keel's roles: one package per role, each ending in one `ROLE = Role(...)` (keel.core.roles)."""
