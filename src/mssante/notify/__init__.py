"""Mail to people's personal addresses, outside the trust space: one-time login codes
and new-message notices, fixed texts without health data (``[notifications]``)."""
