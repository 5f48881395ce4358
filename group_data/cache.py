"""Data for cache hosts, in every environment."""
