"""The trust space of the whitelist tests, reused for its directory routes."""

from tests.whitelist.conftest import foreign, mta, running, template, trust_space

__all__ = ["foreign", "mta", "running", "template", "trust_space"]
