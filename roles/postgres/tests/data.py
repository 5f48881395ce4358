"""Test data for postgres: used by the suite (tests/test_postgres.py)."""

postgres_roles = [
    {"name": "app", "password_secret": "postgres_app_password"},
    {"name": "reporting", "password_secret": "postgres_reporting_password",
     "connection_limit": 5, "member_of": ["pg_monitor"]},
    {"name": "legacy", "login": False},
]
postgres_databases = [
    {"name": "app", "owner": "app", "grants": [
        {"role": "reporting", "database": ["CONNECT"], "schemas": {"public": ["USAGE"]},
         "tables": {"public": ["SELECT"]}, "sequences": {"public": ["select"]}},
    ]},
    {"name": "audit", "owner": "reporting"},
    {"name": "scratch", "owner": "postgres"},
]
postgres_max_connections = 50
postgres_archive_timeout = 10
postgres_backup_retention_full = 1
postgres_backup_retention_diff = 1
