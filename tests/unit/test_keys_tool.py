"""The key tool (security/keys_tool.py): an authority ring, one file per process that seals
as its role only, rotation that keeps old payloads readable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import WorkflowSerializationContext

from security.codec import load_codec, load_ring
from security.keys_tool import main
from security.payload_refusal import UNKNOWN_KEY, refusal_reason
from security.sealing import sealer_of

WID = "card-order:TESTISS001:req-1"


def _payload() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=b'{"kind":"change"}')


def _ctx() -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace="default", workflow_id=WID)


@pytest.fixture
def authority(tmp_path: Path) -> Path:
    path = tmp_path / "authority.json"
    assert main(["init", "--out", str(path)]) == 0
    return path


def test_init_writes_every_role_and_refuses_to_overwrite(authority: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring = load_ring(authority)
    assert ring.seal_as == "worker" and set(ring.active) == {"edge", "receiver", "worker", "operator", "reader"}
    assert stat.S_IMODE(authority.stat().st_mode) == 0o600
    before = authority.read_bytes()
    assert main(["init", "--out", str(authority)]) == 2
    assert "exists" in capsys.readouterr().err and authority.read_bytes() == before


@pytest.mark.parametrize("sealer", ["receiver", "edge", "operator:alice"])
async def test_an_issued_file_holds_its_own_key_and_seals_as_its_holder(
    authority: Path, tmp_path: Path, sealer: str
) -> None:
    out = tmp_path / "issued.json"
    assert main(["issue", "--authority", str(authority), "--as", sealer, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    # Its own key, and the readers' key for those who read what they ask (security/codec.py).
    roles = sorted(entry["role"] for entry in doc["keys"].values())
    assert doc["seal_as"] == sealer and roles == sorted([sealer] + ([] if sealer == "receiver" else ["reader"]))
    assert not any(entry.get("derive") for entry in doc["keys"].values())  # never the operators' master key
    issued, worker = load_codec(out).with_context(_ctx()), load_codec(authority).with_context(_ctx())
    [sealed] = await issued.encode([_payload()])
    [opened] = await worker.decode([sealed])
    assert sealer_of(opened) == sealer  # the workers see who sealed it
    # The holder cannot open what the workers (or any other role) sealed.
    [from_worker] = await worker.encode([_payload()])
    [refused] = await issued.decode([from_worker])
    assert refusal_reason(refused) == UNKNOWN_KEY


async def test_two_operators_get_different_keys(authority: Path, tmp_path: Path) -> None:
    for name in ("alice", "bob"):
        assert (
            main(["issue", "--authority", str(authority), "--as", f"operator:{name}", "--out", str(tmp_path / name)])
            == 0
        )
    alice, bob = load_codec(tmp_path / "alice").with_context(_ctx()), load_codec(tmp_path / "bob").with_context(_ctx())
    [sealed] = await alice.encode([_payload()])
    [refused] = await bob.decode([sealed])
    assert refusal_reason(refused) == UNKNOWN_KEY  # bob cannot seal (or open) as alice


@pytest.mark.parametrize("sealer", ["worker", "operator", "operator:", "operator:a b", "admin"])
def test_issue_refuses_what_is_not_one_process(
    authority: Path, tmp_path: Path, sealer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "issued.json"
    assert main(["issue", "--authority", str(authority), "--as", sealer, "--out", str(out)]) == 2
    assert not out.exists() and "keys_tool:" in capsys.readouterr().err


async def test_rotation_keeps_old_payloads_readable_and_reissues_the_new_key(authority: Path, tmp_path: Path) -> None:
    old_edge = tmp_path / "edge-old.json"
    assert main(["issue", "--authority", str(authority), "--as", "edge", "--out", str(old_edge)]) == 0
    [sealed_before] = await load_codec(old_edge).with_context(_ctx()).encode([_payload()])
    old_kid = load_ring(authority).active["edge"]
    assert main(["rotate", "--authority", str(authority), "--role", "edge"]) == 0
    ring = load_ring(authority)
    assert ring.active["edge"] != old_kid and old_kid in ring.keys
    new_edge = tmp_path / "edge-new.json"
    assert main(["issue", "--authority", str(authority), "--as", "edge", "--out", str(new_edge)]) == 0
    assert load_ring(new_edge).active["edge"] == ring.active["edge"]
    worker = load_codec(authority).with_context(_ctx())
    [opened] = await worker.decode([sealed_before])
    assert sealer_of(opened) == "edge"


def test_show_names_the_sealer_and_never_a_key(authority: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(authority)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seals as worker")
    assert not any(entry["key"] in out for entry in json.loads(authority.read_text())["keys"].values())
