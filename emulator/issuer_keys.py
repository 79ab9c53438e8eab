"""The issuers' onboarded ES256 public keys, by ``kid`` (what D1 keeps from onboarding).

The file is a JWKS, ``{"keys": [...]}``. Each key needs a ``kid``; an extra member
``"issuerId"`` names the issuer it was registered for, and the token endpoint then insists
that the assertion's ``iss`` is that issuer. A key without ``issuerId`` accepts any
10-character ``iss`` (a convenience for local runs).

The file is re-read whenever its modification time changes, so a local stack can create
the issuer key after the emulator has started.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwcrypto import jwk

log = logging.getLogger(__name__)

ISSUER_ID_MEMBER = "issuerId"


@dataclass(frozen=True)
class RegisteredKey:
    kid: str
    key: jwk.JWK
    issuer_id: str | None


def parse_jwks(document: Any) -> dict[str, RegisteredKey]:
    """Map kid → key; keys that are not usable ES256 public keys are skipped with a warning."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('issuer keys file must be a JWKS object {"keys": [...]}')
    registry: dict[str, RegisteredKey] = {}
    for index, raw in enumerate(document["keys"]):
        if not isinstance(raw, dict):
            log.warning("issuer key #%d skipped: not an object", index)
            continue
        member = dict(raw)
        issuer_id = member.pop(ISSUER_ID_MEMBER, None)
        kid = member.get("kid")
        if not isinstance(kid, str) or not kid:
            log.warning("issuer key #%d skipped: no kid", index)
            continue
        if issuer_id is not None and (not isinstance(issuer_id, str) or len(issuer_id) != 10):
            log.warning("issuer key kid=%s skipped: issuerId must be a 10-character string", kid)
            continue
        if member.get("kty") != "EC" or member.get("crv") != "P-256":
            log.warning("issuer key kid=%s skipped: not an EC P-256 key (ES256)", kid)
            continue
        try:
            key = jwk.JWK(**member)
            # D1 stores public keys only: drop a private part if someone pasted one.
            public = jwk.JWK(**key.export_public(as_dict=True))
        except Exception:  # jwcrypto raises several types for bad key material
            log.warning("issuer key kid=%s skipped: invalid key material", kid)
            continue
        if kid in registry:
            log.warning("issuer key kid=%s appears twice; the last one wins", kid)
        registry[kid] = RegisteredKey(kid=kid, key=public, issuer_id=issuer_id)
    return registry


class IssuerKeyRegistry:
    """Reads the JWKS file lazily and again whenever it changes on disk."""

    def __init__(self, path: Path):
        self._path = path
        self._mtime_ns: int | None = None
        self._keys: dict[str, RegisteredKey] = {}
        self._warned_missing = False

    @property
    def path(self) -> Path:
        return self._path

    def _refresh(self) -> None:
        try:
            mtime_ns = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            if not self._warned_missing:
                log.warning("issuer keys file %s does not exist: no issuer can get a token", self._path)
                self._warned_missing = True
            self._keys, self._mtime_ns = {}, None
            return
        if mtime_ns == self._mtime_ns:
            return
        try:
            self._keys = parse_jwks(json.loads(self._path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            log.error("issuer keys file %s unusable (%s); keeping the previous keys", self._path, exc)
            return
        self._mtime_ns = mtime_ns
        self._warned_missing = False
        log.info("loaded %d issuer key(s) from %s", len(self._keys), self._path)

    def lookup(self, kid: str) -> RegisteredKey | None:
        self._refresh()
        return self._keys.get(kid)
