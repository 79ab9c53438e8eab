"""The issuer API: the edge as an HTTP service (docs/issuer-api.md)."""
