"""Shared fixtures come from keel.lab.testing.plugin (enabled in pyproject.toml)."""
