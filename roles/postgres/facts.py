"""Facts about the PostgreSQL cluster, read as the postgres user over the local socket."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

# A grantee of 0 in an ACL is PUBLIC.
_GRANTEE = "coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC')"

CLUSTER_SQL = f"""
select json_build_object(
  'start_time', extract(epoch from pg_postmaster_start_time()),
  'contexts', (select json_object_agg(name, context) from pg_settings),
  'pending_restart', (select coalesce(json_agg(name), '[]') from pg_settings
                      where pending_restart),
  'roles', (select json_object_agg(rolname, json_build_object(
      'login', rolcanlogin, 'superuser', rolsuper, 'createdb', rolcreatedb,
      'createrole', rolcreaterole, 'connection_limit', rolconnlimit,
      'scram', case when rolpassword like 'SCRAM-SHA-256$%'
                    then split_part(rolpassword, '$', 2) end,
      'digest', encode(sha256(convert_to(coalesce(rolpassword, ''), 'UTF8')), 'hex'),
      'member_of', (select coalesce(json_agg(b.rolname order by b.rolname), '[]')
                    from pg_auth_members m join pg_roles b on b.oid = m.roleid
                    where m.member = pg_authid.oid)))
    from pg_authid),
  'databases', (select json_object_agg(datname, json_build_object(
      'owner', pg_get_userbyid(datdba),
      'acl', (select json_object_agg(g, p) from (
          select {_GRANTEE} g, json_agg(a.privilege_type order by a.privilege_type) p
          from aclexplode(coalesce(datacl, acldefault('d', datdba))) a group by 1) x)))
    from pg_database where datallowconn and not datistemplate))
"""

_USER_SCHEMAS = "left(n.nspname, 3) <> 'pg_' and n.nspname <> 'information_schema'"

GRANTS_SQL = f"""
with rels as (
  select n.nspname nsp, case when c.relkind = 'S' then 'sequences' else 'tables' end kind,
         coalesce(c.relacl, acldefault((case when c.relkind = 'S' then 's' else 'r' end)::"char",
                                       c.relowner)) acl
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and {_USER_SCHEMAS})
select json_build_object(
  'schemas', (select coalesce(json_agg(json_build_array(n.nspname, {_GRANTEE},
                                                        a.privilege_type)), '[]')
              from pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
              where {_USER_SCHEMAS}),
  'counts', (select coalesce(json_agg(json_build_array(nsp, kind, n)), '[]')
             from (select nsp, kind, count(*) n from rels group by 1, 2) x),
  'objects', (select coalesce(json_agg(json_build_array(nsp, kind, g, p, c)), '[]')
              from (select r.nsp, r.kind, {_GRANTEE} g, a.privilege_type p, count(*) c
                    from rels r, aclexplode(r.acl) a group by 1, 2, 3, 4) x),
  'defaults', (select coalesce(json_agg(json_build_array(
                   n.nspname, pg_get_userbyid(d.defaclrole),
                   case d.defaclobjtype when 'r' then 'tables' else 'sequences' end,
                   {_GRANTEE}, a.privilege_type)), '[]')
               from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace,
                    aclexplode(d.defaclacl) a
               where d.defaclobjtype in ('r', 'S')))
"""


def psql(sql: str, database: str = "postgres") -> str:
    """A shell command running sql as the postgres user (peer auth on the local socket)."""
    return ("cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 "
            f"-d {shlex.quote(database)} -c {shlex.quote(sql)}")


class PostgresCluster(FactBase):
    """Roles (with SCRAM salt/iterations and a digest of the stored verifier, never the verifier
    itself), databases with owners and ACLs, parameter contexts and pending restarts.
    None when PostgreSQL is not installed; an error when it is installed but not answering."""

    requires_command = "psql"

    def command(self) -> str:
        return psql(CLUSTER_SQL)

    def process(self, output):
        return json.loads("".join(output)) if output else None


class PostgresGrants(FactBase):
    """Privileges in one database: on its schemas, on the tables and sequences of each schema
    (how many objects hold each privilege) and default privileges."""

    requires_command = "psql"

    def command(self, database: str) -> str:
        return psql(GRANTS_SQL, database)

    def process(self, output):
        if not output:
            return None
        raw = json.loads("".join(output))
        out: dict = {"schemas": {}, "counts": {}, "objects": {}, "defaults": {}}
        for nsp, grantee, priv in raw["schemas"]:
            out["schemas"].setdefault(nsp, {}).setdefault(grantee, set()).add(priv)
        for nsp, kind, n in raw["counts"]:
            out["counts"][(nsp, kind)] = n
        for nsp, kind, grantee, priv, count in raw["objects"]:
            out["objects"].setdefault((nsp, kind, grantee), {})[priv] = count
        for nsp, owner, kind, grantee, priv in raw["defaults"]:
            out["defaults"].setdefault((nsp, owner, kind, grantee), set()).add(priv)
        return out
