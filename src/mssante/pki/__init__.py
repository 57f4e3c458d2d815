"""The trust space's PKI: CA hierarchy, issuing, revocation, CRLs, TLS contexts, checks.

- ``names``     DN strings: build subjects, print them, compare them
- ``ca``        the three-CA hierarchy in a directory (``PKI``), issuing and revoking
- ``profiles``  keys and X.509 extensions of each kind of certificate
- ``crl``       building and reading CRLs
- ``registry``  ``issued.json``, the record of issued certificates
- ``files``     atomic writes, 0600 keys, the directory lock
- ``tls``       server and client ``ssl.SSLContext`` with the trust-space rules
- ``verify``    ``CertificateChecker``: chain, validity and revocation of a peer
"""
