"""postgres and redis data: bad data fails before any host is contacted, naming the key;
the ports the roles declare follow their data."""

import pytest

from keel.core.roles import role
from keel.lab.sandbox import Host

# Nothing listens there: a run that got as far as connecting would fail differently.
NOWHERE = Host("d-bad1", "198.51.100.251", False, "running")
ROLE = {"name": "app", "password_secret": "postgres_app_password"}

CASES = {
    "unknown privilege": (
        {"postgres_roles": [ROLE], "postgres_databases": [
            {"name": "app", "owner": "app", "grants": [
                {"role": "app", "tables": {"public": ["SELECT", "SELEKT"]}}]}]},
        "postgres_databases[0].grants[0].tables.public", "unknown privilege 'SELEKT' for tables"),
    "privilege of another kind": (
        {"postgres_roles": [ROLE], "postgres_databases": [
            {"name": "app", "owner": "app", "grants": [{"role": "app", "database": ["SELECT"]}]}]},
        "postgres_databases[0].grants[0].database", "unknown privilege 'SELECT' for database"),
    "invalid memory string": (
        {"postgres_shared_buffers": "lots"}, "postgres_shared_buffers", "size such as"),
    "invalid redis memory string": (
        {"redis_maxmemory": "1 gigabyte"}, "redis_maxmemory", "size such as"),
    "password secret that does not exist": (
        {"postgres_roles": [{"name": "app", "password_secret": "postgres_nosuch_password"}]},
        "postgres_roles[0].password_secret",
        "secret postgres_nosuch_password (needed by role postgres) is not set in "
        "secrets/sandbox.yaml"),
    "redis password secret that does not exist": (
        {"redis_users": [{"name": "app", "password_secret": "redis_nosuch_password"}]},
        "redis_users[0].password_secret",
        "secret redis_nosuch_password (needed by role redis) is not set in secrets/sandbox.yaml"),
    "drop without confirmation": (
        {"postgres_roles": [{"name": "old", "state": "absent"}]},
        "postgres_roles[0]", "set confirm_drop: True"),
    "owner that is not a role": (
        {"postgres_databases": [{"name": "app", "owner": "nobody"}]},
        "postgres_databases", "'nobody' is not a present role"),
    "tuned parameter in postgres_settings": (
        {"postgres_settings": {"shared_buffers": "1GB"}}, "postgres_settings",
        "set by postgres_shared_buffers"),
    "unknown eviction policy": (
        {"redis_maxmemory_policy": "lru"}, "redis_maxmemory_policy",
        "Input should be 'noeviction'"),
    "hba source group with no hosts": (
        {"postgres_hba": [{"sources": ["group:nosuch"]}]}, "postgres_hba",
        "names a group with no hosts"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_data_fails_before_connecting(harness, secrets_env, case):
    secrets_env.set("postgres_app_password", "unused")
    data, key, expected = CASES[case]
    inventory = harness.inventory({"db": [NOWHERE], "cache": [NOWHERE]}, data=data,
                                  name=case.replace(" ", "_"))
    run = harness.run(inventory, "deploys/site.py")
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    line = next((ln for ln in run.stderr.splitlines() if f"d-bad1: {key} " in ln), None)
    assert line, f"no error naming d-bad1 and {key}:\n{run.stderr}"
    assert expected in line, line


def _settings(name: str, **data):
    return role(name).settings.model_validate({**role(name).defaults, **data})


def test_postgres_port_opens_to_the_pg_hba_sources():
    (rule,) = role("postgres").ports(_settings("postgres", postgres_hba=[
        {"sources": ["group:app", "10.0.0.0/8"]},
        {"sources": ["192.0.2.9"], "method": "reject"}]))
    assert (rule.port, rule.sources) == (5432, ["10.0.0.0/8", "group:app"])
    assert role("postgres").ports(_settings("postgres", postgres_hba=[])) == []


def test_redis_port_opens_to_its_sources():
    (rule,) = role("redis").ports(_settings("redis"))
    assert (rule.port, rule.sources) == (6379, ["group:app"])


def test_memory_tuning_scales_and_data_wins():
    from roles.postgres.plan import parameters

    params = parameters(_settings("postgres"), 16 << 30, "10.1.2.3")
    assert params["shared_buffers"] == "4GB" and params["effective_cache_size"] == "12GB"
    assert params["maintenance_work_mem"] == "1GB" and params["work_mem"] == "40MB"
    assert params["listen_addresses"] == "'localhost,10.1.2.3'"
    params = parameters(_settings("postgres", postgres_memory="1GB",
                                  postgres_work_mem="8M"), 16 << 30, None)
    assert params["shared_buffers"] == "256MB" and params["work_mem"] == "8MB"
    assert params["listen_addresses"] == "'localhost'"


def test_privileges_are_made_exact():
    from roles.postgres.plan import grant_sql
    from roles.postgres.schema import Database

    db = Database.model_validate({"name": "app", "owner": "app", "grants": [
        {"role": "ro", "database": ["connect"], "tables": {"public": ["SELECT"]}}]})
    assert grant_sql(db, "ro", None, None) == [
        'GRANT CONNECT ON DATABASE "app" TO "ro"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "app" IN SCHEMA "public" GRANT SELECT ON TABLES '
        'TO "ro"']
    # Two tables, one of them also writable by ro: everything on tables is redone.
    current = {"schemas": {"public": {"PUBLIC": {"USAGE"}}}, "counts": {("public", "tables"): 2},
               "objects": {("public", "tables", "ro"): {"SELECT": 2, "INSERT": 1}},
               "defaults": {("public", "app", "tables", "ro"): {"SELECT"}}}
    assert grant_sql(db, "ro", {"ro": ["CONNECT"]}, current) == [
        'REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "ro"',
        'GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "ro"']
    current["objects"][("public", "tables", "ro")] = {"SELECT": 2}
    assert grant_sql(db, "ro", {"ro": ["CONNECT"]}, current) == []
    # A role the database's grants do not name loses what it has.
    assert grant_sql(db, "other", {"other": ["CONNECT", "TEMPORARY"]}, current) == [
        'REVOKE CONNECT, TEMPORARY ON DATABASE "app" FROM "other"']


def test_restart_only_for_postmaster_parameters():
    from roles.postgres.plan import changed_parameters, restart_reasons

    wanted = {"max_connections": "100", "work_mem": "8MB"}
    current = ["# managed by keel", "max_connections = 100", "work_mem = 4MB",
               "random_page_cost = 1.1"]
    changed = changed_parameters(current, wanted)
    assert changed == {"work_mem", "random_page_cost"}
    cluster = {"contexts": {"max_connections": "postmaster", "work_mem": "user",
                            "random_page_cost": "user"}, "pending_restart": []}
    assert restart_reasons(changed, cluster) == []
    assert restart_reasons(changed | {"max_connections"}, cluster) == ["max_connections"]
    assert restart_reasons(set(), {**cluster, "pending_restart": ["shared_buffers"]}) \
        == ["shared_buffers"]


def test_membership_sql_adds_only_missing_memberships():
    from roles.postgres import plan
    from roles.postgres.schema import Role

    role = Role(name="monitor", member_of=["pg_monitor", "pg_read_all_stats"])
    assert plan.membership_sql(role, None) == (
        "Grant pg_monitor, pg_read_all_stats to PostgreSQL role monitor",
        'GRANT "pg_monitor", "pg_read_all_stats" TO "monitor"')
    assert plan.membership_sql(role, {"member_of": ["pg_read_all_stats"]})[1] == \
        'GRANT "pg_monitor" TO "monitor"'
    assert plan.membership_sql(role, {"member_of": ["pg_monitor", "pg_read_all_stats", "x"]}) \
        is None
