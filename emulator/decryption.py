"""Decrypt and validate ``encryptedData`` (compact JWE, ECDH-ES + A256GCM, P-256).

This is where clear card data exists inside the emulator, briefly: it is validated and
then dropped (the emulator keeps only a masked PAN). Every failure is reported with a
fixed reason and the field path; nothing derived from the plaintext is ever echoed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwe
from jwcrypto.common import base64url_decode
from pydantic import ValidationError

from d1.order import CardData, TrackData
from emulator.config import ExpiryFormat
from emulator.error_codes import D1Error, ErrorCode
from emulator.keys import EncryptionKeys
from emulator.validation import to_d1_error

FIELD = "encryptedData"
# Further rules on the decrypted plaintext (card data, track data); raise D1Error.
CardCheck = Callable[[dict[str, Any], dict[str, Any] | None], None]


def mask_pan(pan: str) -> str:
    """First 6 / last 4, the only form of a PAN allowed in logs or messages."""
    if len(pan) < 12:
        return "*" * len(pan)
    return f"{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]}"


@dataclass(frozen=True)
class DecryptedCard:
    """What the emulator retains from a decrypted order: no clear card data."""

    masked_pan: str
    has_track_data: bool

    def __repr__(self) -> str:
        return f"DecryptedCard(masked_pan={self.masked_pan!r}, has_track_data={self.has_track_data})"


def _bad(reason: str) -> D1Error:
    return D1Error(ErrorCode.INVALID_ENCRYPTED_DATA, f"{FIELD}: {reason}")


def _header(segment: str) -> dict[str, Any]:
    try:
        header = json.loads(base64url_decode(segment))
    except (ValueError, TypeError):
        raise _bad("protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise _bad("protected header is not a JSON object")
    return header


def _check_expiry(exp: str, expiry_format: ExpiryFormat) -> None:
    month = exp[2:] if expiry_format == "YYMM" else exp[:2]
    if not 1 <= int(month) <= 12:
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, f"{FIELD}.exp: month must be 01-12 ({expiry_format})")


class CardDataDecryptor:
    """Holds the emulator's private key and the program's expiry format."""

    def __init__(self, keys: EncryptionKeys, expiry_format: ExpiryFormat) -> None:
        self._keys = keys
        self._expiry_format = expiry_format

    def decrypt(self, compact: str, check: CardCheck | None = None) -> DecryptedCard:
        """Decrypt and validate; ``check(card, track)`` applies further rules (program, cross-field)
        to the plaintext while it exists, raising D1Error."""
        parts = compact.split(".")
        if len(parts) != 5:
            raise _bad("not a compact JWE (5 segments)")
        header = _header(parts[0])
        if header.get("alg") != "ECDH-ES" or header.get("enc") != "A256GCM":
            raise _bad("alg must be ECDH-ES and enc A256GCM")
        if header.get("kid") != self._keys.kid:
            raise _bad("unknown kid")
        if "zip" in header or "crit" in header:
            raise _bad("zip and crit are not supported")
        if parts[1]:
            raise _bad("ECDH-ES carries no encrypted key")
        epk = header.get("epk")
        if not isinstance(epk, dict) or epk.get("kty") != "EC" or epk.get("crv") != "P-256":
            raise _bad("epk missing or not a P-256 key")
        token = jwe.JWE()
        token.allowed_algs = ["ECDH-ES", "A256GCM"]
        try:
            token.deserialize(compact, key=self._keys.private)
            plaintext = token.payload
        except Exception:  # bad tag, bad epk, ...: jwcrypto raises several types
            raise _bad("decryption failed") from None
        try:
            data = json.loads(plaintext)
        except ValueError:
            raise _bad("plaintext is not JSON") from None
        finally:
            del plaintext
        if not isinstance(data, dict):
            raise _bad("plaintext is not a JSON object")
        return self._validate(data, check)

    def _validate(self, data: dict[str, Any], check: CardCheck | None = None) -> DecryptedCard:
        track_raw = data.pop("trackData", None)
        if track_raw is not None:
            try:
                TrackData.model_validate(track_raw)
            except ValidationError as exc:
                raise to_d1_error(exc, prefix=f"{FIELD}.trackData") from None
        try:
            card = CardData.model_validate(data)
        except ValidationError as exc:
            raise to_d1_error(exc, prefix=FIELD) from None
        _check_expiry(card.exp, self._expiry_format)
        if check is not None:
            check(data, track_raw if isinstance(track_raw, dict) else None)
        return DecryptedCard(masked_pan=mask_pan(card.pan), has_track_data=track_raw is not None)
