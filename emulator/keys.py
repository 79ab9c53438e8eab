"""The emulator's own P-256 key pair for ``encryptedData`` (ECDH-ES + A256GCM).

Real D1 hands its public key and ``kid`` to the issuer at onboarding. The emulator makes
one on first start and keeps it in its state directory, so the issuer side can read the
public half from a stable path and orders encrypted before a restart still decrypt after.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwcrypto import jwk

log = logging.getLogger(__name__)

PRIVATE_KEY_FILE = "d1-encryption-private.jwk"
PUBLIC_KEY_FILE = "d1-encryption-public.jwk"


@dataclass(frozen=True)
class EncryptionKeys:
    """The loaded key pair and where it lives on disk."""

    private: jwk.JWK
    public_jwk: dict[str, Any]
    kid: str
    private_path: Path
    public_path: Path


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


def _generate(state_dir: Path) -> None:
    kid = f"d1-enc-{secrets.token_hex(4)}"
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(state_dir / PRIVATE_KEY_FILE, key.export_private(), 0o600)
    public = key.export_public(as_dict=True)
    _write_atomically(state_dir / PUBLIC_KEY_FILE, json.dumps(public, indent=2) + "\n", 0o644)
    log.info("generated D1 encryption key pair kid=%s", kid)


def load_or_create_encryption_keys(state_dir: Path) -> EncryptionKeys:
    """Load the key pair from ``state_dir``, creating it on first start."""
    private_path = state_dir / PRIVATE_KEY_FILE
    public_path = state_dir / PUBLIC_KEY_FILE
    if not private_path.exists():
        _generate(state_dir)
    private = jwk.JWK.from_json(private_path.read_text(encoding="utf-8"))
    if private.get("kty") != "EC" or private.get("crv") != "P-256" or not private.has_private:
        raise ValueError(f"{private_path} is not a P-256 private JWK")
    kid = private.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError(f"{private_path} has no kid")
    public_jwk: dict[str, Any] = private.export_public(as_dict=True)
    # Re-derive the public file if it was deleted or does not match the private key.
    try:
        on_disk = json.loads(public_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        on_disk = None
    if on_disk != public_jwk:
        _write_atomically(public_path, json.dumps(public_jwk, indent=2) + "\n", 0o644)
    log.info("D1 encryption public key (kid=%s) for the issuer side: %s", kid, public_path)
    return EncryptionKeys(
        private=private, public_jwk=public_jwk, kid=kid, private_path=private_path, public_path=public_path
    )
