"""Shared fixtures come from keel.lab.testing.plugin (enabled in pyproject.toml)."""

# The modules that converge the most hosts, longest first. `make test` hands whole modules to
# its workers in collection order (--dist loadfile --no-loadscope-reorder), so the longest
# start at once instead of last, and the short ones fill in beside them.
LONGEST_FIRST = ("test_site.py", "test_molecule.py", "test_monitoring.py", "test_postgres.py",
                 "test_containers.py", "test_storage.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: modules stay whole
