"""Reference stack 2: the multi-agent pod (seed 001): claude, grok and gemini agents.

Three agent containers share one network (they reach each other by name) and nothing else;
each has its own API key secret, given as an env-file, and its own workspace under /srv/ai
owned by the agent's user.

    KEEL_DATA=examples/app/multi_agent.py pyinfra inventories/sandbox.py deploys/app.py
"""

_AGENTS = {"claude": ("ANTHROPIC_API_KEY", 8101), "grok": ("XAI_API_KEY", 8102),
           "gemini": ("GEMINI_API_KEY", 8103)}

app_services = {
    name: {
        "build": {"context": "tests/images/standin"},
        "environment": {
            "AGENT_NAME": name,
            "WORKSPACE": "/ai/workspace",
            "STANDIN_WRITE_DIRS": "/ai/workspace",
            "STANDIN_DIGEST_ENV": env,
            "STANDIN_UPSTREAMS": ",".join(f"{o}=http://{o}:8080" for o in _AGENTS if o != name),
        },
        "secrets": [{"secret": f"agent_{name}_api_key", "env": env}],
        "ports": [{"port": port, "target": 8080}],
        "volumes": [{"source": f"/srv/ai/{name}", "target": "/ai/workspace",
                     "owner": "10001:10001", "mode": "0750"}],
        "networks": ["agents"],
        "health": {"test": ["python3", "/app/standin.py", "health"], "interval": "5s",
                   "timeout": "3s", "retries": 3, "start_period": "5s"},
        "limits": {"cpus": 1.0, "memory": "1G"},
        "user": "10001:10001",
    }
    for name, (env, port) in _AGENTS.items()
}
app_networks = {"agents": {}}
