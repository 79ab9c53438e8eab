"""The payload codec seals every payload with AES-256-GCM and supports key rotation."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from security.codec import AesGcmCodec, CodecKeyError, add_key, generate_keys_file, load_codec
from security.payload_refusal import TAMPERED, UNENCRYPTED, UNKNOWN_KEY, refusal_reason

SECRET = b'{"pan":"4111111111111111","cvv2":"123"}'


def payload() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=SECRET)


async def test_round_trip_and_nothing_in_clear(tmp_path: Path) -> None:
    codec = load_codec(generate_keys_file(tmp_path / "keys.json", "k1"))
    [sealed] = await codec.encode([payload()])
    assert SECRET not in sealed.SerializeToString()
    assert b"4111111111111111" not in sealed.SerializeToString()
    assert sealed.metadata["encryption-key-id"] == b"k1"
    [opened] = await codec.decode([sealed])
    assert opened == payload()


async def test_rotation_keeps_old_payloads_readable(tmp_path: Path) -> None:
    keys = generate_keys_file(tmp_path / "keys.json", "k1")
    [old] = await load_codec(keys).encode([payload()])
    new_kid = add_key(keys)
    rotated = load_codec(keys)
    assert rotated.active_key_id == new_kid
    [new] = await rotated.encode([payload()])
    assert new.metadata["encryption-key-id"] == new_kid.encode()
    assert await rotated.decode([old, new]) == [payload(), payload()]


async def test_unknown_key_and_tampering_are_refused_without_raising(tmp_path: Path) -> None:
    """A refusal is a marker, not an exception: raising would fail the whole workflow
    activation, so one forged signal could wedge the order it was aimed at."""
    refusals: list[str] = []
    [sealed] = await load_codec(generate_keys_file(tmp_path / "a.json", "k1")).encode([payload()])
    other = load_codec(generate_keys_file(tmp_path / "b.json", "k2"), on_refused=refusals.append)
    [opened] = await other.decode([sealed])
    assert refusal_reason(opened) == UNKNOWN_KEY and SECRET not in opened.SerializeToString()
    same_kid_other_key = load_codec(generate_keys_file(tmp_path / "c.json", "k1"), on_refused=refusals.append)
    [opened] = await same_kid_other_key.decode([sealed])
    assert refusal_reason(opened) == TAMPERED
    assert refusals == [UNKNOWN_KEY, TAMPERED]


async def test_unencrypted_payloads_are_refused_unless_migrating(tmp_path: Path) -> None:
    refusals: list[str] = []
    keys = generate_keys_file(tmp_path / "keys.json")
    [refused] = await load_codec(keys, on_refused=refusals.append).decode([payload()])
    assert refusal_reason(refused) == UNENCRYPTED and refusals == [UNENCRYPTED]
    migrating = load_codec(keys, accept_unencrypted=True, on_refused=refusals.append)
    assert await migrating.decode([payload()]) == [payload()]
    assert refusals == [UNENCRYPTED]


def test_bad_configuration_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CodecKeyError, match="32 bytes"):
        AesGcmCodec({"k": b"short"}, "k")
    with pytest.raises(CodecKeyError, match="not among"):
        AesGcmCodec({"k": b"x" * 32}, "other")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CodecKeyError, match="documented form"):
        load_codec(tmp_path / "bad.json")
