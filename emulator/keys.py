"""The emulator's P-256 keys for ``encryptedData`` (ECDH-ES + A256GCM), with rotation.

Real D1 hands its public key and ``kid`` to the issuer at onboarding and rotates it from
time to time; the issuer then encrypts for the new key while orders encrypted for the
previous one must still be accepted for a while. The emulator keeps a keyring in its state
directory, so the issuer side reads the public half of the *active* key from a stable path
and orders encrypted before a restart still decrypt after:

* ``active``: the key whose public half is published (``d1-encryption-public.jwk``);
* ``previous``: keys replaced by a rotation, still accepted for decryption;
* ``retired``: refused (``CRYPTO_ERROR``); their private material is deleted.

``POST /_emulator/keys/rotate`` creates a new active key (optionally retiring the old one
at once) and rewrites the public-key file; ``POST /_emulator/keys/retire`` retires one
previous key. A state directory from before the keyring (a single
``d1-encryption-private.jwk``) is imported as the active key.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jwcrypto import jwk

log = logging.getLogger(__name__)

KEYRING_FILE = "d1-encryption-keyring.json"
PUBLIC_KEY_FILE = "d1-encryption-public.jwk"
# The single-key file of earlier versions, imported once as the active key.
LEGACY_PRIVATE_KEY_FILE = "d1-encryption-private.jwk"

KeyState = Literal["active", "previous", "retired"]


class KeyringError(ValueError):
    """A rotation or retirement that cannot be done (unknown kid, the active key...)."""


@dataclass
class KeyEntry:
    kid: str
    state: KeyState
    created_at: str
    # None once retired: a retired key can never decrypt again.
    private: jwk.JWK | None
    retired_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kid": self.kid, "state": self.state, "createdAt": self.created_at, "retiredAt": self.retired_at}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write_atomically(path: Path, text: str, mode: int) -> None:
    """Write via a temporary file so a crash never leaves half a key behind."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)  # the umask may have narrowed or widened the open() mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-256", kid=f"d1-enc-{secrets.token_hex(4)}")


def _checked_private(key: jwk.JWK, where: Path) -> jwk.JWK:
    if key.get("kty") != "EC" or key.get("crv") != "P-256" or not key.has_private:
        raise ValueError(f"{where} holds a key that is not a P-256 private JWK")
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError(f"{where} holds a key without a kid")
    return key


class EncryptionKeyring:
    """The keys D1 decrypts ``encryptedData`` with, persisted in ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.keyring_path = state_dir / KEYRING_FILE
        self.public_path = state_dir / PUBLIC_KEY_FILE
        self._entries: list[KeyEntry] = []
        self._load_or_create()

    # ------------------------------------------------------------------ reading

    @property
    def active(self) -> KeyEntry:
        return next(e for e in self._entries if e.state == "active")

    @property
    def kid(self) -> str:
        return self.active.kid

    @property
    def private(self) -> jwk.JWK:
        key = self.active.private
        assert key is not None
        return key

    @property
    def public_jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = self.private.export_public(as_dict=True)
        return public

    def lookup(self, kid: str) -> tuple[KeyState | None, jwk.JWK | None]:
        """(state, private key) of ``kid``; the key only for the active and previous ones."""
        for entry in self._entries:
            if entry.kid == kid:
                return entry.state, entry.private if entry.state != "retired" else None
        return None, None

    def to_json(self) -> dict[str, Any]:
        return {"active": self.kid, "keys": [e.to_json() for e in self._entries]}

    # ------------------------------------------------------------------ changing

    def rotate(self, *, retire_previous: bool = False) -> KeyEntry:
        """A new active key; the old one stays accepted (``previous``) unless retired now."""
        old = self.active
        new = KeyEntry(kid="", state="active", created_at=_now(), private=_new_key())
        assert new.private is not None
        new.kid = new.private["kid"]
        if retire_previous:
            self._retire(old)
        else:
            old.state = "previous"
        self._entries.append(new)
        self._save()
        log.info("rotated the D1 encryption key: active kid=%s, previous kid=%s (%s)", new.kid, old.kid, old.state)
        return new

    def retire(self, kid: str) -> KeyEntry:
        entry = next((e for e in self._entries if e.kid == kid), None)
        if entry is None:
            raise KeyringError("kid: not a key of this emulator")
        if entry.state == "active":
            raise KeyringError("kid: the active key cannot be retired (rotate first)")
        if entry.state == "previous":
            self._retire(entry)
            self._save()
            log.info("retired the D1 encryption key kid=%s", kid)
        return entry

    @staticmethod
    def _retire(entry: KeyEntry) -> None:
        entry.state = "retired"
        entry.private = None
        entry.retired_at = _now()

    # ------------------------------------------------------------------ persistence

    def _load_or_create(self) -> None:
        if self.keyring_path.exists():
            self._entries = self._parse(json.loads(self.keyring_path.read_text(encoding="utf-8")))
        else:
            legacy = self.state_dir / LEGACY_PRIVATE_KEY_FILE
            if legacy.exists():
                key = _checked_private(jwk.JWK.from_json(legacy.read_text(encoding="utf-8")), legacy)
                log.info("imported the D1 encryption key kid=%s from %s", key["kid"], legacy)
            else:
                key = _new_key()
                log.info("generated D1 encryption key pair kid=%s", key["kid"])
            self._entries = [KeyEntry(kid=key["kid"], state="active", created_at=_now(), private=key)]
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._save()
        self._publish()
        log.info("D1 encryption public key (kid=%s) for the issuer side: %s", self.kid, self.public_path)

    def _parse(self, document: Any) -> list[KeyEntry]:
        where = self.keyring_path
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError(f'{where} must be {{"keys": [...]}}')
        entries: list[KeyEntry] = []
        for raw in document["keys"]:
            state = raw.get("state")
            if state not in ("active", "previous", "retired"):
                raise ValueError(f"{where}: a key has no valid state")
            private = None
            if state != "retired":
                private = _checked_private(jwk.JWK(**raw["jwk"]), where)
            entries.append(
                KeyEntry(
                    kid=str(raw["kid"]),
                    state=state,
                    created_at=str(raw.get("createdAt", "")),
                    private=private,
                    retired_at=raw.get("retiredAt"),
                )
            )
        if sum(1 for e in entries if e.state == "active") != 1:
            raise ValueError(f"{where} must hold exactly one active key")
        return entries

    def _save(self) -> None:
        keys = []
        for entry in self._entries:
            item = entry.to_json()
            if entry.private is not None:
                item["jwk"] = entry.private.export_private(as_dict=True)
            keys.append(item)
        _write_atomically(self.keyring_path, json.dumps({"keys": keys}, indent=2) + "\n", 0o600)
        self._publish()

    def _publish(self) -> None:
        """(Re)write the active public key where the issuer side reads it, if it differs."""
        try:
            on_disk = json.loads(self.public_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            on_disk = None
        if on_disk != self.public_jwk:
            _write_atomically(self.public_path, json.dumps(self.public_jwk, indent=2) + "\n", 0o644)


def load_or_create_encryption_keys(state_dir: Path) -> EncryptionKeyring:
    """The keyring in ``state_dir``, created (one active key) on first start."""
    return EncryptionKeyring(state_dir)
