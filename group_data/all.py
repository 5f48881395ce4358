"""Defaults for every environment. Role defaults live in roles/<name>/__init__.py."""
