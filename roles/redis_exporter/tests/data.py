"""Test data for redis_exporter (its molecule scenario, with redis as a peer): the ACL user
it connects as, which the redis role creates (README: the data contract), as
group_data/all.py lists it for every environment."""

from roles import redis_exporter

redis_users = [redis_exporter.REDIS_USER]
