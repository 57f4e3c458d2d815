"""The audit trail: a tamper-evident log of who did what to which message."""
