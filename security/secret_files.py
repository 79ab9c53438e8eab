"""Reading secrets named by the settings: a file path, or an environment variable.

Secrets (client secrets, operator tokens, keys) never live in the repository or in a
settings default. A setting names *where* the secret is; this module reads it and makes
sure error messages name the place, never the content.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr


class SecretUnavailable(RuntimeError):
    """A secret the configuration requires is missing or unreadable."""


def read_secret(file: Path | None, value: SecretStr | None, *, what: str) -> str:
    """The secret from ``file`` (stripped of surrounding whitespace) or else ``value``
    (which pydantic-settings read from an environment variable)."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretUnavailable(f"{what}: cannot read {file}: {exc.strerror}") from None
        if not text:
            raise SecretUnavailable(f"{what}: {file} is empty")
        return text
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    raise SecretUnavailable(f"{what}: not configured (set the *_FILE setting or the variable itself)")


def write_secret(path: Path, secret: str) -> Path:
    """Write a secret file readable by its owner only (local stack and tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    return path
