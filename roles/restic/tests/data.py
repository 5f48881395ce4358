"""Test data for restic: used by the suite (tests/test_restic.py) and the molecule scenario."""

restic_enabled = True
# A set the data adds (storage declares its own): a directory a small service serves, with a
# pre-backup hook, and the service stopped while the set is restored.
restic_sets = [
    {"name": "uploads", "paths": ["/srv/uploads"], "units": ["keel-uploads.service"],
     "pre_backup": "date -u +%s > /srv/uploads/.pre-backup"},
]
