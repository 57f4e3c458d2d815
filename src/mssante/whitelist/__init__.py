"""The whitelist: model, ANS XML format, checksum and signature, publisher, trust client."""
