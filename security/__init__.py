"""Protection of card data: the payload codec (at rest in Temporal), redaction (logs,
traces, errors), key files and the local PKI for mutual TLS."""
