"""Publishing the operator's mailboxes to the national directory of the trust space.

``contact``: a mailbox as a FHIR ContactPoint, and the FHIRPath Patch that adds or
removes it. ``client``: the mutual-TLS PATCH to the trust space and what its answer
means (done, retry, failed). ``publisher``: the task that drains the store's
directory outbox, in order per address, retrying while the trust space is away.
"""
