"""Test data for claude_cli (tests/test_claude_cli.py)."""

claude_cli_model = "opus"
claude_cli_allowed_tools = ["Read", "Grep", "Glob", "Bash(git diff:*)"]
claude_cli_denied_tools = ["WebFetch"]
claude_cli_subagents = [
    {"name": "planner", "description": "Plans a change: reads, never edits.",
     "prompt": "You plan changes step by step.", "tools": ["Read", "Grep"], "model": "sonnet"},
    {"name": "reviewer", "description": "Reviews a diff.", "prompt": "You review diffs."},
]
claude_cli_callers = ["nobody"]
claude_cli_cache_dir = "/var/cache/keel/claude-code"
claude_cli_auth = "api_key"
