"""Test data for postgres_exporter (its molecule scenario, with postgres as a peer): the
login role it connects as, which the postgres role creates (README: the data contract)."""

postgres_roles = [
    {"name": "keel_monitor", "password_secret": "postgres_monitor_password",
     "member_of": ["pg_monitor"]},
]
