"""Secret files: a setting names *where* a secret is, never its value, and errors name the place.
Every secret written goes through :func:`write_secret_bytes` (0600, never half written); every
reader calls :func:`warn_if_exposed`, which names a file that group or others can read."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

log = logging.getLogger(__name__)

SECRET_MODE = 0o600


class SecretUnavailable(RuntimeError):
    pass


def warn_if_exposed(path: Path) -> bool:
    """Warn (once per file and mode) when group or others may access ``path``; a missing
    file is left to the reader to report."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return False
    if mode & 0o077:
        _warn_exposed(str(path), mode)
    return bool(mode & 0o077)


@functools.cache
def _warn_exposed(path: str, mode: int) -> None:
    log.warning(
        "secret file %s has mode %s: group or others can read it; restrict it with: chmod 600 %s", path, oct(mode), path
    )


def read_secret(file: Path | None, value: SecretStr | None, *, what: str) -> str:
    if file is not None:
        warn_if_exposed(file)
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


def write_file_atomically(path: Path, data: bytes, mode: int) -> Path:
    """The file has exactly ``mode`` whatever the umask or an earlier file's mode
    (``os.open``'s mode applies only on creation, minus the umask): a new inode replaces it,
    and a symlink at ``path`` is replaced, not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # before the content: never readable by others, not for a moment
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # a key lost in a crash after the rename is a key lost
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_secret_bytes(path: Path, data: bytes) -> Path:
    return write_file_atomically(path, data, SECRET_MODE)


def write_secret(path: Path, secret: str) -> Path:
    return write_secret_bytes(path, (secret + "\n").encode("utf-8"))
