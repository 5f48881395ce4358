"""Reference stack 3: the web stack (seed 004): PostgreSQL, a CMS, an API, an nginx frontend.

Two networks: backend (db, cms, api) and frontend (frontend, cms, api), so the frontend
cannot reach the database. Five volumes: database and uploads are critical (backed up), the
three caches are not. Health checks with start periods; start order db -> cms -> api ->
frontend; limits and reservations as the seed's compose file; restart unless-stopped.
Stand-in images: a real deployment sets postgres:16-alpine, its CMS and API images, nginx.

    KEEL_DATA=examples/app/web_stack.py pyinfra inventories/sandbox.py deploys/app.py
"""

_STANDIN = {"context": "tests/images/standin"}


def _health(start_period: str, interval: str = "5s") -> dict:
    return {"test": ["python3", "/app/standin.py", "health"], "interval": interval,
            "timeout": "5s", "retries": 3, "start_period": start_period}


app_services = {
    "db": {
        "build": _STANDIN,
        "environment": {
            "POSTGRES_DB": "claude_agent_ui", "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres_password",
            "PGDATA": "/var/lib/postgresql/data/pgdata",
            "STANDIN_PORT": "5432", "STANDIN_WRITE_DIRS": "/var/lib/postgresql/data",
            "STANDIN_SECRETS": "/run/secrets/postgres_password",
        },
        "secrets": [{"secret": "web_postgres_password",
                     "target": "/run/secrets/postgres_password"}],
        "ports": [{"port": 5433, "target": 5432}],
        "volumes": [{"source": "database", "target": "/var/lib/postgresql/data"}],
        "networks": ["backend"],
        "health": _health("10s"),
        "limits": {"cpus": 2.0, "memory": "1G", "memory_reservation": "256M"},
        "user": "10001:10001",
    },
    "cms": {
        "build": _STANDIN,
        "environment": {
            "NODE_ENV": "production", "HOST": "0.0.0.0", "PORT": "1337",
            "DATABASE_CLIENT": "postgres", "DATABASE_HOST": "db", "DATABASE_PORT": "5432",
            "DATABASE_NAME": "claude_agent_ui", "DATABASE_USERNAME": "postgres",
            "DATABASE_PASSWORD_FILE": "/run/secrets/postgres_password",
            "MAX_FILE_SIZE": "52428800",
            "STANDIN_PORT": "1337", "STANDIN_REQUIRES": "db:5432",
            "STANDIN_WRITE_DIRS": "/opt/app/public/uploads,/opt/app/.cache",
            "STANDIN_DIGEST_ENV": "APP_KEYS,JWT_SECRET",
        },
        "secrets": [
            {"secret": "web_postgres_password", "target": "/run/secrets/postgres_password"},
            {"secret": "web_strapi_app_keys", "env": "APP_KEYS"},
            {"secret": "web_strapi_jwt_secret", "env": "JWT_SECRET"},
        ],
        "ports": [{"port": 1337, "target": 1337}],
        "volumes": [{"source": "uploads", "target": "/opt/app/public/uploads"},
                    {"source": "cms_cache", "target": "/opt/app/.cache"}],
        "networks": ["backend", "frontend"],
        "depends_on": ["db"],
        "health": _health("60s"),
        "limits": {"cpus": 2.0, "memory": "1G", "memory_reservation": "512M"},
        "user": "10001:10001",
    },
    "api": {
        "build": _STANDIN,
        "environment": {
            "NODE_ENV": "production", "HOST": "0.0.0.0", "PORT": "3001",
            "STRAPI_URL": "http://cms:1337", "LOG_LEVEL": "info", "LOG_FORMAT": "json",
            "MAX_WORKERS": "4", "REQUEST_TIMEOUT": "300000",
            "STANDIN_PORT": "3001", "STANDIN_REQUIRES": "cms:1337",
            "STANDIN_WRITE_DIRS": "/app/.cache", "STANDIN_DIGEST_ENV": "ANTHROPIC_API_KEY",
        },
        "secrets": [{"secret": "web_strapi_api_token", "env": "STRAPI_API_TOKEN"},
                    {"secret": "anthropic_api_key", "env": "ANTHROPIC_API_KEY"}],
        "ports": [{"port": 3001, "target": 3001}],
        "volumes": [{"source": "api_cache", "target": "/app/.cache"}],
        "networks": ["backend", "frontend"],
        "depends_on": ["cms"],
        "health": _health("30s"),
        "limits": {"cpus": 2.0, "memory": "1G", "memory_reservation": "512M"},
        "user": "10001:10001",
    },
    "frontend": {
        "build": _STANDIN,
        "environment": {
            "STANDIN_PORT": "8080", "STANDIN_REQUIRES": "api:3001,cms:1337",
            "STANDIN_UPSTREAMS": "api=http://api:3001,cms=http://cms:1337",
            "STANDIN_WRITE_DIRS": "/var/cache/nginx",
        },
        "ports": [{"port": 80, "target": 8080, "address": "0.0.0.0"}],
        "volumes": [{"source": "nginx_cache", "target": "/var/cache/nginx"}],
        "networks": ["frontend"],
        "depends_on": ["cms", "api"],
        "health": _health("10s"),
        "limits": {"cpus": 1.0, "memory": "256M", "memory_reservation": "64M"},
        "user": "10001:10001",
    },
}
app_networks = {"backend": {}, "frontend": {}}
_OWNER = {"owner": "10001:10001", "mode": "0750"}
app_volumes = {
    "database": {**_OWNER, "critical": True},
    "uploads": {**_OWNER, "critical": True},
    "cms_cache": _OWNER,
    "api_cache": _OWNER,
    "nginx_cache": _OWNER,
}
