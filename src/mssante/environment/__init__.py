"""Running the parts: one operator process, and the whole local environment."""
