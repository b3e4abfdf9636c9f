"""hostscale's sample application server (ASGI over Postgres)."""
