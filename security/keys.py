"""Loading keys (JWK or PEM) from files named in the settings, never from the repository."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from jwcrypto import jwk

from d1.jwe import EncryptionKeyError, check_d1_encryption_key
from security.secret_files import warn_if_exposed


class KeyFileError(RuntimeError):
    pass


def load_jwk(path: Path, *, private: bool) -> jwk.JWK:
    # The error names the file, never its content.
    if private:
        warn_if_exposed(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        if raw.lstrip().startswith(b"{"):
            key = jwk.JWK.from_json(raw.decode("utf-8"))
        else:
            key = jwk.JWK.from_pem(raw)
    except Exception:
        raise KeyFileError(f"key file {path} is neither a JWK nor a PEM key") from None
    if private and not key.has_private:
        raise KeyFileError(f"key file {path} holds no private key")
    return key


def load_d1_encryption_key(
    path: Path, *, allowed_kids: Collection[str] = (), allowed_thumbprints: Collection[str] = ()
) -> jwk.JWK:
    """D1's public encryption key from a JWK file carrying D1's ``kid``, checked to be one.

    A PEM file is refused: it has no ``kid``, and the one jwcrypto would derive (the key's
    thumbprint) is not the name D1 files the key under, so D1 would answer CRYPTO_ERROR to
    every order. Pinned (``D1_ENCRYPTION_KEY_KIDS``, ``D1_ENCRYPTION_KEY_THUMBPRINTS``), a key
    whose ``kid`` or RFC 7638 SHA-256 thumbprint is not listed is refused: whoever can replace
    the file cannot make the edge encrypt card data for a key of their own."""
    try:
        is_jwk = path.read_bytes().lstrip().startswith(b"{")
    except OSError as exc:
        raise KeyFileError(f"cannot read D1 encryption key {path}: {exc.strerror}") from None
    if not is_jwk:
        raise KeyFileError(
            f"D1 encryption key {path} is not a JWK: give D1's public key as a JWK with the kid Thales assigned"
        )
    key = load_jwk(path, private=False)
    try:
        check_d1_encryption_key(key, source=f"D1 encryption key {path}")
    except EncryptionKeyError as err:
        raise KeyFileError(str(err)) from None
    if allowed_kids and key.get("kid") not in allowed_kids:
        raise KeyFileError(
            f"D1 encryption key {path} has kid {key.get('kid')!r}, not one of D1_ENCRYPTION_KEY_KIDS: refused"
        )
    if allowed_thumbprints and key.thumbprint() not in allowed_thumbprints:
        raise KeyFileError(
            f"D1 encryption key {path} has thumbprint {key.thumbprint()}, not one of "
            "D1_ENCRYPTION_KEY_THUMBPRINTS: refused"
        )
    return key
