"""The operator's HTTPS service: one FastAPI application (``app.py``) made of one
router per concern (``autoconfig.py`` today), served by ``server.py``."""
