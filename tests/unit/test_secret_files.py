"""Secret files: every writer leaves mode 0600 (also over an existing, wider file), every
reader warns about a secret that group or others can read, naming the file, never its content."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jwcrypto import jwk
from pydantic import SecretStr

from security.codec import add_key, generate_keys_file, load_codec
from security.keys import load_jwk
from security.operator_tokens import ensure_operator_token
from security.pki import ensure_local_pki, load_ca, save_pair
from security.secret_files import read_secret, warn_if_exposed, write_secret, write_secret_bytes
from stack.onboarding import ensure_issuer_keys
from tests.security.support import ISSUER_ID

SECRET = "s3cr3t-value-that-must-not-be-logged"


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """With umask 0, ``os.open(..., 0o600)`` is the only thing keeping a file private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def exposed(path: Path, content: str = "old content\n") -> Path:
    """An existing secret file someone left readable by everybody."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(0o644)
    return path


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- writers


def test_write_secret_creates_and_replaces_with_mode_0600(tmp_path: Path) -> None:
    new = write_secret(tmp_path / "sub" / "new", SECRET)
    assert mode(new) == 0o600 and new.read_text() == SECRET + "\n"
    old = write_secret(exposed(tmp_path / "old"), SECRET)
    assert mode(old) == 0o600 and old.read_text() == SECRET + "\n"
    assert write_secret_bytes(exposed(tmp_path / "raw"), b"\x00key").read_bytes() == b"\x00key"
    assert mode(tmp_path / "raw") == 0o600
    assert no_temp_files(tmp_path) and no_temp_files(tmp_path / "sub")


def test_codec_keys_generation_and_rotation_leave_0600(tmp_path: Path) -> None:
    keys = generate_keys_file(exposed(tmp_path / "codec-keys.json"))
    before = set(json.loads(keys.read_text())["keys"])
    assert mode(keys) == 0o600 and len(before) == 5
    keys.chmod(0o644)
    kid = add_key(keys, "edge")
    assert mode(keys) == 0o600
    doc = json.loads(keys.read_text())
    assert set(doc["keys"]) == before | {kid} and doc["active"]["edge"] == kid
    assert no_temp_files(tmp_path)


def test_pki_private_keys_are_0600_even_over_wider_files(tmp_path: Path) -> None:
    pki = ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    keys = sorted((tmp_path / "pki").glob("*.key"))
    assert keys and all(mode(k) == 0o600 for k in keys)
    assert mode(pki.ca_cert) == 0o644  # certificates are public
    # Re-issue over a key someone widened: it comes back 0600.
    pair = pki.emulator_server
    pair.key.chmod(0o644)
    pair.cert.unlink()
    ensure_local_pki(tmp_path / "pki", [ISSUER_ID])
    assert mode(pair.key) == 0o600
    # save_pair (tests issue odd certificates with it) too.
    ca_cert, ca_key = load_ca(pki)
    target = pki.issuer_client(ISSUER_ID)
    target.key.chmod(0o666)
    save_pair(target, ca_cert, ca_key)
    assert mode(target.key) == 0o600
    assert no_temp_files(tmp_path / "pki")


def test_issuer_signing_key_is_written_0600_and_an_exposed_one_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private, _ = ensure_issuer_keys(tmp_path / "issuer", ISSUER_ID)
    assert mode(private) == 0o600 and jwk.JWK.from_json(private.read_text()).has_private
    private.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="security.secret_files"):
        ensure_issuer_keys(tmp_path / "issuer", ISSUER_ID)
    assert [r.getMessage() for r in caplog.records] == [
        f"secret file {private} has mode 0o640: group or others can read it; restrict it with: chmod 600 {private}"
    ]


def test_operator_tokens_are_written_0600(tmp_path: Path) -> None:
    path = exposed(tmp_path / "codec-operators", "someone-else:abcdefghijklmnopqrstuvwxyz\n")
    token = ensure_operator_token(path, "local-operator")
    assert mode(path) == 0o600 and f"local-operator:{token}" in path.read_text()


# ---------------------------------------------------------------- readers


def _codec_keys(path: Path) -> None:
    load_codec(path)


def _private_jwk(path: Path) -> None:
    load_jwk(path, private=True)


def _read_secret(path: Path) -> None:
    read_secret(path, None, what="test secret")


@pytest.mark.parametrize("reader", [_read_secret, _codec_keys, _private_jwk])
def test_readers_warn_about_an_exposed_secret_without_its_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, reader: Callable[[Path], None]
) -> None:
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="k")
    contents = {
        _read_secret: SECRET,
        _codec_keys: generate_keys_file(tmp_path / "gen.json").read_text(),
        _private_jwk: key.export_private(),
    }
    path = tmp_path / "secret"
    path.write_text(contents[reader])
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        reader(path)
    assert caplog.records == []  # 0600: nothing to say

    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        reader(path)
        reader(path)  # once per file and mode, not on every read
    assert len(caplog.records) == 1, caplog.text
    message = caplog.records[0].getMessage()
    assert str(path) in message and f"chmod 600 {path}" in message and "0o644" in message
    assert contents[reader].strip() not in caplog.text and SECRET not in caplog.text


def test_public_keys_and_missing_files_are_not_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    public = tmp_path / "public.jwk"
    public.write_text(jwk.JWK.generate(kty="EC", crv="P-256").export_public())
    public.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_jwk(public, private=False)
        assert warn_if_exposed(tmp_path / "missing") is False
        assert read_secret(None, SecretStr(SECRET), what="env secret") == SECRET
    assert caplog.records == []
    assert warn_if_exposed(public) is True  # the helper itself does see it
