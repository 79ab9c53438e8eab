"""The Thales D1 physical-card ("central issuance") contract, as pydantic models.

Everything that crosses the wire to or from D1 is described here, once, and both sides
(the issuer-side product and the emulator) read it. Only pydantic is imported so the
workflow sandbox can load these modules.
"""
