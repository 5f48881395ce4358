"""Test data for the agent's molecule scenario: the CLI from the controller's cache."""

agent_server_name = "agents.sandbox.internal"
claude_cli_cache_dir = "/var/cache/keel/claude"
