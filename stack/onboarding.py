"""Local stand-in for D1 onboarding: the issuer's assertion-signing key pair.

With real D1, the issuer generates this key pair, keeps the private key in its own
secret store and gives the public key (with its kid) to Thales. Locally we generate it on
first start into the ignored state folder and hand the public half to the emulator.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from jwcrypto import jwk

from security.secret_files import warn_if_exposed, write_secret


def ensure_issuer_keys(directory: Path, issuer_id: str) -> tuple[Path, Path]:
    """Return (private key file, JWKS of public keys for the emulator), creating them once."""
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "assertion-signing-key.jwk"
    jwks = directory / "public-keys.jwks"
    if not private.exists():
        key = jwk.JWK.generate(kty="EC", crv="P-256", kid=f"issuer-sig-{secrets.token_hex(4)}")
        write_secret(private, key.export_private())
    else:
        warn_if_exposed(private)
    key = jwk.JWK.from_json(private.read_text())
    public = key.export_public(as_dict=True)
    public["issuerId"] = issuer_id
    jwks.write_text(json.dumps({"keys": [public]}, indent=2))
    return private, jwks
