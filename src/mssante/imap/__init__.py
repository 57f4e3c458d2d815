"""The operator's IMAP server (RFC 3501 IMAP4rev1 and RFC 9051 IMAP4rev2)."""
