"""Static operator credentials (``name:token [role ...]`` lines in a secret file) for the codec
server and ``/_receiver/stats``, compared as SHA-256 digests in constant time, never logged."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from security.secret_files import warn_if_exposed, write_secret


class OperatorTokens:
    def __init__(self, tokens: Mapping[str, str], roles: Mapping[str, Iterable[str]] | None = None) -> None:
        if not tokens:
            raise ValueError("the operator tokens file holds no token")
        self._digests = [(name, hashlib.sha256(tok.encode("utf-8")).digest()) for name, tok in tokens.items()]
        self._roles = {name: frozenset(r) for name, r in (roles or {}).items()}

    @classmethod
    def from_file(cls, path: Path) -> OperatorTokens:
        """``name:token [role ...]`` per line; blank lines and ``#`` comments ignored."""
        warn_if_exposed(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read operator tokens file {path}: {exc.strerror}") from None
        tokens: dict[str, str] = {}
        roles: dict[str, list[str]] = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, rest = line.partition(":")
            words = rest.split()
            if not sep or not name.strip() or not words or len(words[0]) < 16:
                raise ValueError(f"{path}:{number}: expected 'name:token [role ...]' with a token of 16+ characters")
            tokens[name.strip()], roles[name.strip()] = words[0], words[1:]
        return cls(tokens, roles)

    def operator(self, token: str | None) -> str | None:
        # Every entry is compared: no early exit.
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for name, expected in self._digests:
            if hmac.compare_digest(digest, expected):
                found = name
        return found

    def roles(self, name: str) -> frozenset[str]:
        return self._roles.get(name, frozenset())


def ensure_operator_token(path: Path, name: str = "local-operator", roles: Sequence[str] = ()) -> str:
    """``name``'s token in ``path``, created when missing; an existing line keeps its token and
    gains the ``roles`` it lacks (a state directory from before a role was required)."""
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(f"{name}:"):
                words = line.partition(":")[2].split()
                token, have = words[0], words[1:]
                if set(roles) - set(have):
                    write_secret(path, " ".join([f"{name}:{token}", *have, *(r for r in roles if r not in have)]))
                return token
    token = secrets.token_urlsafe(24)
    write_secret(path, " ".join([f"{name}:{token}", *roles]))
    return token
