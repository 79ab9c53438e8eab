"""Temporal payload codec: AES-256-GCM, keyed by ``encryption-key-id`` so keys rotate without
re-encrypting history; a payload it cannot open is refused, not raised (docs/security.md,
"Nobody without the product's keys can change an order"; docs/operations.md, "Rotating keys").
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from security.payload_refusal import REFUSED_ENCODING, TAMPERED, UNENCRYPTED, UNKNOWN_KEY, refused
from security.secret_files import warn_if_exposed, write_secret_bytes

log = logging.getLogger("security.codec")

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
CIPHER = "encryption-cipher"
CIPHER_NAME = b"AES-256-GCM"
NONCE_BYTES = 12


class CodecKeyError(RuntimeError):
    pass


class AesGcmCodec(PayloadCodec):
    def __init__(
        self,
        keys: Mapping[str, bytes],
        active_key_id: str,
        *,
        accept_unencrypted: bool = False,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        if active_key_id not in keys:
            raise CodecKeyError(f"active codec key {active_key_id!r} is not among the configured keys")
        for kid, key in keys.items():
            if len(key) != 32:
                raise CodecKeyError(f"codec key {kid!r} must be 32 bytes (AES-256)")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active_key_id
        self._active_bytes = active_key_id.encode()
        self.accept_unencrypted = accept_unencrypted
        self._on_refused = on_refused

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
            metadata={"encoding": ENCODING, KEY_ID: self._active_bytes, CIPHER: CIPHER_NAME}, data=nonce + sealed
        )

    def decode_one(self, payload: Payload) -> Payload:
        """A refused marker, never an exception: see the module doc."""
        encoding = payload.metadata.get("encoding")
        if encoding != ENCODING:
            if encoding == REFUSED_ENCODING.encode():
                return payload
            if self.accept_unencrypted:
                return payload  # migration setting: payloads written before the codec was enabled
            return self._refuse(UNENCRYPTED, "a payload not sealed by the product's codec")
        kid = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            return self._refuse(UNKNOWN_KEY, f"a payload sealed with unknown codec key {kid[:40]!r}")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, kid.encode())
            return Payload.FromString(plain)
        except Exception:
            return self._refuse(TAMPERED, f"a payload sealed with key {kid[:40]!r} that failed authentication")

    def _refuse(self, reason: str, what: str) -> Payload:
        log.warning("payload codec refused %s (%s); the message it belongs to is not accepted", what, reason)
        if self._on_refused is not None:
            self._on_refused(reason)
        return refused(reason)


def load_codec(
    path: Path, *, accept_unencrypted: bool = False, on_refused: Callable[[str], None] | None = None
) -> AesGcmCodec:
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
    return AesGcmCodec(keys, active, accept_unencrypted=accept_unencrypted, on_refused=on_refused)


def generate_keys_file(path: Path, key_id: str | None = None) -> Path:
    """Create a keys file with one fresh key (local stack and tests only), 0600."""
    kid = key_id or f"codec-{secrets.token_hex(4)}"
    doc = {"active": kid, "keys": {kid: base64.b64encode(AESGCM.generate_key(256)).decode()}}
    return write_secret_bytes(path, json.dumps(doc, indent=2).encode())


def add_key(path: Path) -> str:
    """Rotation: a fresh active key (old keys stay for decoding), rewritten 0600 atomically."""
    warn_if_exposed(path)
    doc = json.loads(path.read_text())
    kid = f"codec-{secrets.token_hex(4)}"
    doc["keys"][kid] = base64.b64encode(AESGCM.generate_key(256)).decode()
    doc["active"] = kid
    write_secret_bytes(path, json.dumps(doc, indent=2).encode())
    return kid
