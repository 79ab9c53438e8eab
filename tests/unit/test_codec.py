"""The payload codec seals every payload with AES-256-GCM, with one key per role, bound to
the workflow it was made for, and says on decoding who sealed it (security/codec.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext

from security.codec import (
    AesGcmCodec,
    CodecKeyError,
    KeyRing,
    add_key,
    generate_keys_file,
    issue_keys_file,
    load_codec,
    new_ring,
)
from security.payload_refusal import TAMPERED, UNENCRYPTED, UNKNOWN_KEY, WRONG_WORKFLOW, refusal_reason
from security.sealing import SEALED_BY, SEALED_FOR, role_of, sealer_of

SECRET = b'{"pan":"4111111111111111","cvv2":"123"}'


def payload() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=SECRET)


def bare(p: Payload) -> Payload:
    """``p`` without what decoding adds (who sealed it, for which workflow)."""
    out = Payload()
    out.CopyFrom(p)
    for name in (SEALED_BY, SEALED_FOR):
        if name in out.metadata:
            del out.metadata[name]
    return out


def on(codec: AesGcmCodec, workflow_id: str) -> AesGcmCodec:
    return codec.with_context(WorkflowSerializationContext(namespace="default", workflow_id=workflow_id))


async def test_round_trip_names_the_sealer_and_nothing_is_in_clear(tmp_path: Path) -> None:
    codec = load_codec(generate_keys_file(tmp_path / "keys.json"))
    [sealed] = await on(codec, "card-order:A:1").encode([payload()])
    assert SECRET not in sealed.SerializeToString()
    assert b"4111111111111111" not in sealed.SerializeToString()
    assert sealed.metadata["encryption-key-id"].decode() == codec.active_key_id
    [opened] = await on(codec, "card-order:A:1").decode([sealed])
    assert bare(opened) == payload()
    assert sealer_of(opened) == "worker" and opened.metadata[SEALED_FOR] == b"card-order:A:1"


async def test_a_payload_copied_onto_another_workflow_is_refused(tmp_path: Path) -> None:
    refusals: list[str] = []
    codec = load_codec(generate_keys_file(tmp_path / "keys.json"), on_refused=refusals.append)
    [sealed] = await on(codec, "card-order:A:attacker").encode([payload()])
    [opened] = await on(codec, "card-order:A:victim").decode([sealed])
    assert refusal_reason(opened) == WRONG_WORKFLOW and SECRET not in opened.SerializeToString()
    # Claiming the victim's id in the clear metadata breaks the authentication instead.
    forged = Payload()
    forged.CopyFrom(sealed)
    forged.metadata[SEALED_FOR] = b"card-order:A:victim"
    [opened] = await on(codec, "card-order:A:victim").decode([forged])
    assert refusal_reason(opened) == TAMPERED
    assert refusals == [WRONG_WORKFLOW, TAMPERED]


async def test_activity_payloads_are_bound_to_their_workflow(tmp_path: Path) -> None:
    codec = load_codec(generate_keys_file(tmp_path / "keys.json"))
    ctx = ActivitySerializationContext(
        namespace="default",
        activity_id="1",
        activity_type="submit",
        activity_task_queue="q",
        workflow_id="card-order:A:1",
        workflow_type="CardOrderWorkflow",
        is_local=False,
    )
    [sealed] = await codec.with_context(ctx).encode([payload()])
    assert sealed.metadata[SEALED_FOR] == b"card-order:A:1"
    assert refusal_reason((await on(codec, "card-order:A:1").decode([sealed]))[0]) is None


async def test_without_context_any_workflow_opens_as_the_codec_server_does(tmp_path: Path) -> None:
    codec = load_codec(generate_keys_file(tmp_path / "keys.json"))
    [sealed] = await on(codec, "card-order:A:1").encode([payload()])
    [opened] = await codec.decode([sealed])
    assert bare(opened) == payload()


async def test_a_sender_cannot_claim_to_be_someone_else(tmp_path: Path) -> None:
    codec = load_codec(generate_keys_file(tmp_path / "keys.json"), seal_as="receiver")
    claiming = payload()
    claiming.metadata[SEALED_BY] = b"operator:alice"
    [sealed] = await on(codec, "w").encode([claiming])
    [opened] = await on(codec, "w").decode([sealed])
    assert sealer_of(opened) == "receiver"


async def test_each_process_holds_its_role_key_only(tmp_path: Path) -> None:
    authority = generate_keys_file(tmp_path / "authority.json")
    worker = load_codec(authority)
    receiver = load_codec(issue_keys_file(authority, "receiver", tmp_path / "receiver.json"))
    alice = load_codec(issue_keys_file(authority, "operator:alice", tmp_path / "alice.json"))
    doc = json.loads((tmp_path / "receiver.json").read_text())
    assert [k["role"] for k in doc["keys"].values()] == ["receiver"]
    [from_receiver] = await on(receiver, "w").encode([payload()])
    [from_alice] = await on(alice, "w").encode([payload()])
    # The worker opens both and knows who sealed each; alice's key is derived, not listed.
    opened = await on(worker, "w").decode([from_receiver, from_alice])
    assert [sealer_of(p) for p in opened] == ["receiver", "operator:alice"]
    assert role_of(sealer_of(opened[1])) == "operator"
    # The receiver cannot open what an operator sealed, nor seal as one.
    [refused] = await on(receiver, "w").decode([from_alice])
    assert refusal_reason(refused) == UNKNOWN_KEY
    with pytest.raises(CodecKeyError, match="no active key for role 'operator'"):
        receiver.sealing_as("operator:alice")
    with pytest.raises(CodecKeyError, match="belongs to 'operator:alice'"):
        alice.sealing_as("operator:bob")


async def test_rotation_keeps_old_payloads_readable(tmp_path: Path) -> None:
    keys = generate_keys_file(tmp_path / "keys.json")
    [old] = await on(load_codec(keys), "w").encode([payload()])
    new_kid = add_key(keys, "worker")
    rotated = load_codec(keys)
    assert rotated.active_key_id == new_kid
    [new] = await on(rotated, "w").encode([payload()])
    assert new.metadata["encryption-key-id"] == new_kid.encode()
    assert [bare(p) for p in await on(rotated, "w").decode([old, new])] == [payload(), payload()]


async def test_unknown_key_and_tampering_are_refused_without_raising(tmp_path: Path) -> None:
    """A refusal is a marker, not an exception: raising would fail the whole workflow
    activation, so one forged signal could wedge the order it was aimed at."""
    refusals: list[str] = []
    [sealed] = await on(load_codec(generate_keys_file(tmp_path / "a.json")), "w").encode([payload()])
    other = load_codec(generate_keys_file(tmp_path / "b.json"), on_refused=refusals.append)
    [opened] = await on(other, "w").decode([sealed])
    assert refusal_reason(opened) == UNKNOWN_KEY and SECRET not in opened.SerializeToString()
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    mine = load_codec(tmp_path / "a.json", on_refused=refusals.append)
    [opened] = await on(mine, "w").decode([tampered])
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
    ring = new_ring()
    with pytest.raises(CodecKeyError, match="not a sealer"):
        AesGcmCodec(ring, seal_as="admin")
    with pytest.raises(CodecKeyError, match="not among"):
        KeyRing(keys=ring.keys, active={**ring.active, "edge": "missing"}, seal_as="worker")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CodecKeyError, match="documented form"):
        load_codec(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text('{"active": "k1", "keys": {"k1": "AAAA"}}')
    with pytest.raises(CodecKeyError, match="documented form"):
        load_codec(tmp_path / "old.json")


async def test_results_are_sealed_for_readers_and_messages_with_the_senders_key(tmp_path: Path) -> None:
    """Reading is not forging: the edge and operators hold the readers' key to read views and
    results, and a payload sealed with it names ``reader``, which no handler accepts."""
    from typing import ClassVar

    from pydantic import BaseModel

    from temporal_client import data_converter

    class Message(BaseModel):
        sealed_by_sender: ClassVar[bool] = True
        kind: str = "redirect"

    class View(BaseModel):
        status: str = "SHIPPED"

    authority = generate_keys_file(tmp_path / "authority.json")
    worker = data_converter(load_codec(authority)).with_context(
        WorkflowSerializationContext(namespace="default", workflow_id="w")
    )
    alice = data_converter(load_codec(issue_keys_file(authority, "operator:alice", tmp_path / "alice.json")))
    alice = alice.with_context(WorkflowSerializationContext(namespace="default", workflow_id="w"))
    receiver = load_codec(issue_keys_file(authority, "receiver", tmp_path / "receiver.json"))
    [view] = await worker.encode([View()])
    [message] = await alice.encode([Message()])
    assert [sealer_of(p) for p in await on(load_codec(authority), "w").decode([view, message])] == [
        "reader",
        "operator:alice",
    ]
    assert await alice.decode([view], [View]) == [View()]  # alice reads the worker's result
    [refused] = await on(receiver, "w").decode([view])  # the receiver reads nothing
    assert refusal_reason(refused) == UNKNOWN_KEY
