"""Test data for redis: used by the suite (tests/test_redis.py)."""

redis_users = [
    {"name": "app", "password_secret": "redis_app_password", "keys": ["~app:*"]},
]
redis_maxmemory = "64MB"
redis_maxmemory_policy = "allkeys-lfu"
redis_appendonly = True
