"""keel's roles: one package per role (DEFAULTS, Schema, one @deploy `apply`)."""
