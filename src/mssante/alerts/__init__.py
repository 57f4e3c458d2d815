"""A health authority's alerts: sent to a selection of the directory, and followed."""
