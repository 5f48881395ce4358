"""Data for app hosts (agents, their containers and the Claude CLI), in every environment."""
