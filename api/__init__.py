"""Flask HTTP API (thin): blueprints over service/. `create_app()` is the WSGI factory."""
