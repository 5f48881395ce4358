"""Test data for redis_exporter (its molecule scenario, with redis as a peer): the ACL user
it connects as, which the redis role creates (README: the data contract)."""

redis_users = [
    {"name": "keel_exporter", "password_secret": "redis_exporter_password", "keys": [],
     "channels": [],
     "commands": ["-@all", "+@connection", "+memory", "+info", "+config|get", "+client",
                  "+slowlog", "+latency", "+cluster|info", "+xinfo", "+type", "+strlen",
                  "+llen", "+hlen", "+scard", "+zcard", "+xlen", "+pfcount", "+scan", "+get",
                  "+eval"]},
]
