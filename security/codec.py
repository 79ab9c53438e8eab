"""Temporal payload codec: AES-256-GCM, so the Temporal server and its database never
hold card data, tokens or addresses in clear.

Each encrypted payload carries the id of the key that sealed it (metadata
``encryption-key-id``). Encoding always uses the active key; decoding accepts every
configured key, so keys can be rotated without re-encrypting history: add the new key,
make it active, keep the old one until no open workflow needs it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from security.secret_files import warn_if_exposed, write_secret_bytes

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
CIPHER = "encryption-cipher"
CIPHER_NAME = b"AES-256-GCM"
NONCE_BYTES = 12


class CodecKeyError(RuntimeError):
    pass


class AesGcmCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise CodecKeyError(f"active codec key {active_key_id!r} is not among the configured keys")
        for kid, key in keys.items():
            if len(key) != 32:
                raise CodecKeyError(f"codec key {kid!r} must be 32 bytes (AES-256)")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active_key_id
        self._active_bytes = active_key_id.encode()

    @property
    def active_key_id(self) -> str:
        return self._active

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active].encrypt(nonce, payload.SerializeToString(), self._active_bytes)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._active_bytes, CIPHER: CIPHER_NAME},
            data=nonce + sealed,
        )

    def decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec was enabled, or not ours
        kid = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CodecKeyError(f"payload sealed with unknown codec key {kid!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, kid.encode())
        except Exception:
            raise CodecKeyError(f"payload sealed with key {kid!r} failed authentication") from None
        return Payload.FromString(plain)


def load_codec(path: Path) -> AesGcmCodec:
    """Keys file: ``{"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}``."""
    warn_if_exposed(path)
    try:
        doc = json.loads(path.read_text())
        keys = {kid: base64.b64decode(value) for kid, value in doc["keys"].items()}
        active = str(doc["active"])
    except OSError as exc:
        raise CodecKeyError(f"cannot read codec keys file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CodecKeyError(f"codec keys file {path} is not of the documented form") from None
    return AesGcmCodec(keys, active)


def generate_keys_file(path: Path, key_id: str | None = None) -> Path:
    """Create a keys file with one fresh key (local stack and tests only), 0600."""
    kid = key_id or f"codec-{secrets.token_hex(4)}"
    doc = {"active": kid, "keys": {kid: base64.b64encode(AESGCM.generate_key(256)).decode()}}
    return write_secret_bytes(path, json.dumps(doc, indent=2).encode())


def add_key(path: Path, *, make_active: bool = True) -> str:
    """Rotation helper: add a fresh key to an existing file (old keys stay for decoding).
    The file is rewritten atomically with mode 0600, whatever mode it had."""
    warn_if_exposed(path)
    doc = json.loads(path.read_text())
    kid = f"codec-{secrets.token_hex(4)}"
    doc["keys"][kid] = base64.b64encode(AESGCM.generate_key(256)).decode()
    if make_active:
        doc["active"] = kid
    write_secret_bytes(path, json.dumps(doc, indent=2).encode())
    return kid
