"""``encryptedData``: compact JWE, ECDH-ES + A256GCM, to D1's P-256 key (encryption.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from jwcrypto import jwe, jwk


def encrypt_for_d1(plaintext: Mapping[str, object], d1_public_key: jwk.JWK) -> str:
    kid = d1_public_key.get("kid")
    if not kid:
        raise ValueError("D1 encryption key has no kid; D1 needs it to pick its private key")
    payload = json.dumps(plaintext, separators=(",", ":")).encode("utf-8")
    header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": kid}
    token = jwe.JWE(payload, protected=json.dumps(header))
    token.add_recipient(d1_public_key)
    return str(token.serialize(compact=True))
