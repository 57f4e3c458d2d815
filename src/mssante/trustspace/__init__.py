"""The trust space: its state on disk and its HTTPS service."""
