"""Shared fixtures come from keel.testing.plugin (enabled in pyproject.toml)."""
