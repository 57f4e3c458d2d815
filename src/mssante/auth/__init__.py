"""Who logs in: passwords (argon2), certificates (cards and programs), the throttle of
failed logins, for IMAP and SMTP submission alike."""
