"""Test deploy: the monitoring roles, with stand-in PostgreSQL and Redis servers.

Until the postgres and redis roles create the exporters' login role and ACL user from their
own data, this deploy installs Debian's servers and creates both, reading the passwords from
the exporters' secret files on the host (never from argv).
"""

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import apt, server

from keel.site import apply_role

PG_PASSWORD = "/run/keel/secrets/postgres_exporter/password"
REDIS_PASSWORDS = "/run/keel/secrets/redis_exporter/passwords.json"
# The ACL redis_exporter documents for its metrics.
REDIS_ACL = ("-@all +@connection +memory -readonly +strlen +config|get +xinfo +pfcount -quit "
             "+zcard +type +xlen -readwrite -command +client -wait +scard +llen +hlen +get "
             "+eval +slowlog +cluster|info -hello -echo +info +latency +scan -reset -auth "
             "-asking")


class Probe(FactBase):
    """Whether a shell check succeeds (False also when its tools are not installed yet)."""

    default = bool

    def command(self, check: str) -> str:
        return f"({check}) >/dev/null 2>&1 && echo yes || true"

    def process(self, output) -> bool:
        return "yes" in output


apply_role("base")
apply_role("secrets")
if "db" in host.groups:
    apt.packages(name="Install PostgreSQL (stand-in)", packages=["postgresql"],
                 no_recommends=True)
if "cache" in host.groups:
    apt.packages(name="Install Redis (stand-in)", packages=["redis-server"], no_recommends=True)
for role in ("node_exporter", "postgres_exporter", "redis_exporter", "prometheus"):
    apply_role(role)
if "db" in host.groups and not host.get_fact(
        Probe, "runuser -u postgres -- psql -XtAc \"select 1 from pg_roles where "
               "rolname = 'keel_monitor'\" | grep -q 1"):
    server.shell(name="Create monitoring role keel_monitor (pg_monitor)", commands=[
        f"python3 -c \"import sys; print(\\\"CREATE ROLE keel_monitor LOGIN IN ROLE pg_monitor "
        f"PASSWORD '%s'\\\" % open(sys.argv[1]).read().strip())\" {PG_PASSWORD} "
        "| runuser -u postgres -- psql -Xq -v ON_ERROR_STOP=1"])
if "cache" in host.groups and not host.get_fact(
        Probe, "redis-cli ACL GETUSER keel_exporter | grep -q flags"):
    server.shell(name="Create ACL user keel_exporter", commands=[
        f"python3 -c \"import json, sys; p = json.load(open(sys.argv[1]))"
        f"['redis://127.0.0.1:6379']; print('ACL SETUSER keel_exporter reset on >' + p + "
        f"' {REDIS_ACL}')\" {REDIS_PASSWORDS} | redis-cli | grep -qx OK"])
