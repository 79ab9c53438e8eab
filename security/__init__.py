"""Protection of card data: payload codec, redaction, key files, mutual TLS, authentication."""
