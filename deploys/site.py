"""The whole platform: every role each host's groups call for, in order."""

from keel.deploy.site import apply_site

apply_site()
