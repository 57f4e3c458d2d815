"""The Pro Santé Connect-like OpenID provider of the local environment.

The real PSC cannot be reached from a laptop or a test; the trust space serves an
OpenID Connect provider that behaves like it (``app.py``), with the e-CPS approval
simulated by a page that exists only when ``[psc] simulator = true``. Signing keys
(``keys.py``) and registered clients (``clients.py``) live in the trust space's data
directory; the claims come from the national directory (``claims.py``); the protocol
rules are in ``provider.py``; ``flow.py`` is the client side, for ``mssante psc token``.
"""
