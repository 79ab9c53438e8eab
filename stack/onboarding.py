"""Local stand-in for D1 onboarding: the issuer's assertion-signing key pair, generated on first
start into the state folder, its public half handed to the emulator (as to Thales in production)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path

from jwcrypto import jwk

from security.secret_files import warn_if_exposed, write_secret

PRIMARY_KEY_NAME = "assertion-signing-key.jwk"


def signing_key_file(directory: Path, issuer_id: str | None = None) -> Path:
    return directory / (PRIMARY_KEY_NAME if issuer_id is None else f"assertion-signing-key-{issuer_id}.jwk")


def _ensure_key(private: Path) -> jwk.JWK:
    if not private.exists():
        key = jwk.JWK.generate(kty="EC", crv="P-256", kid=f"issuer-sig-{secrets.token_hex(4)}")
        write_secret(private, key.export_private())
    else:
        warn_if_exposed(private)
    return jwk.JWK.from_json(private.read_text())


def ensure_issuer_keys(directory: Path, issuer_id: str, other_issuers: Sequence[str] = ()) -> tuple[Path, Path]:
    """(private key file, the emulator's JWKS of every tenant's public key), created once."""
    directory.mkdir(parents=True, exist_ok=True)
    private = signing_key_file(directory)
    jwks = directory / "public-keys.jwks"
    keys = []
    for tenant, path in ((issuer_id, private), *((o, signing_key_file(directory, o)) for o in other_issuers)):
        public = _ensure_key(path).export_public(as_dict=True)
        public["issuerId"] = tenant
        keys.append(public)
    jwks.write_text(json.dumps({"keys": keys}, indent=2))
    return private, jwks
