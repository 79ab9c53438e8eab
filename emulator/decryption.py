"""Decrypt and validate ``encryptedData`` (compact JWE, ECDH-ES + A256GCM, P-256).

This is where clear card data exists inside the emulator, briefly: it is validated and
then dropped (the emulator keeps only a masked PAN). Failures use D1's documented codes:
``CRYPTO_ERROR`` when the JWE cannot be decrypted (not a compact ECDH-ES/A256GCM JWE, a
``kid`` that is unknown or retired, a bad tag or key), ``PARSING_ERROR`` when the plaintext
is not a JSON object, and the field codes for the card data itself
(``$.encryptedData.pan``...). ``error`` is the path, ``reason`` a fixed text; nothing
derived from the plaintext is ever echoed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwe
from jwcrypto.common import base64url_decode
from pydantic import ValidationError

from d1.issues import Path
from d1.masking import mask_pan
from d1.order import CardData, TrackData
from emulator.config import ExpiryFormat
from emulator.error_codes import D1Error, ErrorCode
from emulator.keys import EncryptionKeyring
from emulator.validation import field_error, json_path, to_d1_error

FIELD = "encryptedData"
# Further rules on the decrypted plaintext (card data, track data); raise D1Error.
CardCheck = Callable[[dict[str, Any], dict[str, Any] | None], None]


@dataclass(frozen=True)
class DecryptedCard:
    """What the emulator retains from a decrypted order: no clear card data."""

    masked_pan: str
    has_track_data: bool

    def __repr__(self) -> str:
        return f"DecryptedCard(masked_pan={self.masked_pan!r}, has_track_data={self.has_track_data})"


def _crypto(reason: str, prefix: Path) -> D1Error:
    return D1Error(ErrorCode.CRYPTO_ERROR, json_path((FIELD,), prefix), reason=reason)


def _parsing(reason: str, prefix: Path) -> D1Error:
    return D1Error(ErrorCode.PARSING_ERROR, json_path((FIELD,), prefix), reason=reason)


def _header(segment: str, prefix: Path) -> dict[str, Any]:
    try:
        header = json.loads(base64url_decode(segment))
    except (ValueError, TypeError):
        raise _crypto("the protected header is not base64url JSON", prefix) from None
    if not isinstance(header, dict):
        raise _crypto("the protected header is not a JSON object", prefix)
    return header


def _check_expiry(exp: str, expiry_format: ExpiryFormat, prefix: Path) -> None:
    month = exp[2:] if expiry_format == "YYMM" else exp[:2]
    if not 1 <= int(month) <= 12:
        raise field_error(
            ErrorCode.FIELD_INVALID_FORMAT, (FIELD, "exp"), f"month must be 01-12 ({expiry_format})", prefix
        )


class CardDataDecryptor:
    """Holds the emulator's keyring and the program's expiry format."""

    def __init__(self, keys: EncryptionKeyring, expiry_format: ExpiryFormat) -> None:
        self._keys = keys
        self._expiry_format = expiry_format

    def decrypt(self, compact: str, check: CardCheck | None = None, prefix: Path = ()) -> DecryptedCard:
        """Decrypt and validate; ``check(card, track)`` applies further rules (program, cross-field)
        to the plaintext while it exists, raising D1Error. ``prefix`` locates the order in the
        body (a batch item)."""
        parts = compact.split(".")
        if len(parts) != 5:
            raise _crypto("not a compact JWE (5 segments)", prefix)
        header = _header(parts[0], prefix)
        if header.get("alg") != "ECDH-ES" or header.get("enc") != "A256GCM":
            raise _crypto("alg must be ECDH-ES and enc A256GCM", prefix)
        kid = header.get("kid")
        state, key = self._keys.lookup(kid) if isinstance(kid, str) else (None, None)
        if key is None:
            raise _crypto("the key of this kid is retired" if state == "retired" else "unknown kid", prefix)
        if "zip" in header or "crit" in header:
            raise _crypto("zip and crit are not supported", prefix)
        if parts[1]:
            raise _crypto("ECDH-ES carries no encrypted key", prefix)
        epk = header.get("epk")
        if not isinstance(epk, dict) or epk.get("kty") != "EC" or epk.get("crv") != "P-256":
            raise _crypto("epk missing or not a P-256 key", prefix)
        token = jwe.JWE()
        token.allowed_algs = ["ECDH-ES", "A256GCM"]
        try:
            token.deserialize(compact, key=key)
            plaintext = token.payload
        except Exception:  # bad tag, bad epk, ...: jwcrypto raises several types
            raise _crypto("decryption failed", prefix) from None
        try:
            data = json.loads(plaintext)
        except ValueError:
            raise _parsing("the decrypted data is not valid JSON", prefix) from None
        finally:
            del plaintext
        if not isinstance(data, dict):
            raise _parsing("the decrypted data is not a JSON object", prefix)
        return self._validate(data, check, prefix)

    def _validate(self, data: dict[str, Any], check: CardCheck | None, prefix: Path) -> DecryptedCard:
        track_raw = data.pop("trackData", None)
        if track_raw is not None:
            try:
                TrackData.model_validate(track_raw)
            except ValidationError as exc:
                raise to_d1_error(exc, prefix=(*prefix, FIELD, "trackData")) from None
        try:
            card = CardData.model_validate(data)
        except ValidationError as exc:
            raise to_d1_error(exc, prefix=(*prefix, FIELD)) from None
        _check_expiry(card.exp, self._expiry_format, prefix)
        if check is not None:
            check(data, track_raw if isinstance(track_raw, dict) else None)
        return DecryptedCard(masked_pan=mask_pan(card.pan), has_track_data=track_raw is not None)
