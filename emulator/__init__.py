"""A local stand-in for Thales D1 (physical card issuance), served over real HTTP.

It speaks the documented contract (``d1/``; what D1 leaves open is in ``d1/assumptions.py``): the
JWT-bearer token endpoint, the card order endpoint with a JWE ``encryptedData``, the
on-demand ``productionStatus`` endpoint, and a notification sender that walks each order
through production and shipment. A sandbox-only admin API under ``/_emulator`` exposes
counters and fault injection so tests can prove exactly-once behaviour.

The emulator is a remote party: it imports only ``d1/`` and third-party libraries, never
the issuer-side packages (workflows, activities, receiver, starter).
"""
