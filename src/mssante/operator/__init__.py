"""The operator's runtime: settings, store, trust view and caches (``runtime.py``),
built once per process and handed to every protocol server; none of them owns it."""
