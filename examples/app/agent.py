"""Example stack 1: an agent-like service (seed 000) wired to PostgreSQL and Redis by hand.

keel's platform runs its own agent (roles/agent), wired by the roles themselves; this overlay
stays as an example of an app service whose wiring data spells out (the container tests use
it, with the stand-in image).

One container; PostgreSQL and Redis are the platform's own hosts (roles postgresql and redis,
groups db and cache), reached by name. Passwords arrive as files (the *_FILE convention),
never in the environment or the unit. The image is the stand-in from tests/images; a real
deployment sets `image: registry.example.com/agent:1.4.2` instead of `build`.

    KEEL_DATA=examples/app/agent.py pyinfra inventories/sandbox.py deploys/app.py

With the storage and claude_cli roles on the same host, let them provide the backend and the
Claude defaults instead of the explicit variables: add `"env_files":
["/run/keel/secrets/app/storage.env", "/etc/keel/app/claude-cli.env"]` to the service (they
restart app-agent when those files change; run the container as storage_app_user's uid, which
owns its DATA_DIR).
"""

app_services = {
    "agent": {
        "build": {"context": "tests/images/standin"},
        "environment": {
            "STORAGE_BACKEND": "postgresql",
            "DATA_DIR": "/data",
            "DATABASE_URL": "postgresql://agent@db1:5432/agent",
            "DATABASE_PASSWORD_FILE": "/run/secrets/postgres_app_password",
            "REDIS_URL": "redis://cache1:6379/0",
            "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
            "DEFAULT_MODEL": "sonnet",
            "DEFAULT_ALLOWED_TOOLS": "Read,Edit,Bash,Glob,Grep,Write",
            "ENABLE_SUBAGENTS": "true",
            "STANDIN_PORT": "8000",
            "STANDIN_WRITE_DIRS": "/data",
            "STANDIN_SECRETS": "/run/secrets/postgres_app_password,/run/secrets/redis_password",
        },
        "secrets": [
            {"secret": "postgres_app_password"},
            {"secret": "redis_password"},
        ],
        "ports": [{"port": 8000, "target": 8000, "address": "0.0.0.0"}],
        "volumes": [{"source": "agent_data", "target": "/data"}],
        "networks": ["agent"],
        "health": {"test": ["python3", "/app/standin.py", "health"], "interval": "5s",
                   "timeout": "3s", "retries": 3, "start_period": "10s"},
        "limits": {"cpus": 2.0, "memory": "2G", "memory_reservation": "512M"},
        "user": "10001:10001",
    },
}
app_networks = {"agent": {}}
app_volumes = {"agent_data": {"owner": "10001:10001", "mode": "0750", "critical": True}}
