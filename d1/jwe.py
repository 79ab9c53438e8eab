"""``encryptedData``: a compact JWE, ECDH-ES + A256GCM, for D1's P-256 key (docs/d1/encryption.md).

This is the only place card data is encrypted for D1. The issuer's edge (the starter)
calls :func:`encrypt_for_d1` once per order; from then on only the JWE exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from jwcrypto import jwe, jwk


class EncryptionKeyError(ValueError):
    """The configured D1 encryption key cannot be used (wrong type, curve, no kid)."""


def check_d1_encryption_key(key: jwk.JWK, *, source: str = "the D1 encryption key") -> jwk.JWK:
    """D1 publishes an EC P-256 public key with a ``kid``; anything else is a configuration
    mistake that would only show as D1 refusing every order (CRYPTO_ERROR)."""
    params = key.export_public(as_dict=True)
    if params.get("kty") != "EC" or params.get("crv") != "P-256":
        raise EncryptionKeyError(
            f"{source} must be an EC P-256 public key (kty EC, crv P-256), not kty {params.get('kty')!r}"
            + (f" crv {params.get('crv')!r}" if params.get("crv") else "")
        )
    if key.has_private:
        raise EncryptionKeyError(f"{source} holds a private key: configure D1's public key only")
    if not key.get("kid"):
        raise EncryptionKeyError(f"{source} has no kid; D1 needs it to pick its private key")
    return key


def encrypt_for_d1(plaintext: Mapping[str, object], d1_public_key: jwk.JWK) -> str:
    kid = d1_public_key.get("kid")
    if not kid:
        raise EncryptionKeyError("D1 encryption key has no kid; D1 needs it to pick its private key")
    payload = json.dumps(plaintext, separators=(",", ":")).encode("utf-8")
    header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": kid}
    token = jwe.JWE(payload, protected=json.dumps(header))
    token.add_recipient(d1_public_key)
    return str(token.serialize(compact=True))
