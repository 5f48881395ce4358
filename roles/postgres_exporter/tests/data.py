"""Test data for postgres_exporter (its molecule scenario, with postgres as a peer): the
login role it connects as, which the postgres role creates (README: the data contract), as
group_data/all.py lists it for every environment."""

from roles import postgres_exporter

postgres_roles = [postgres_exporter.POSTGRES_ROLE]
