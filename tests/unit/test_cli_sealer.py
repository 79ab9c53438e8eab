"""Who a command seals as follows from the credential it holds (temporal_client.sealer_for):
an operator's issued file acts as that person, an edge file starts orders, the authority ring
acts as an operator only when a development setting names one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from security.codec import issued_ring, new_ring, write_ring
from settings import CodecSettings
from temporal_client import SealerRefused, codec_from_settings, sealer_for

AUTHORITY = new_ring()


def test_an_operator_file_acts_as_its_holder_and_cannot_start_orders() -> None:
    alice = issued_ring(AUTHORITY, "operator:alice")
    assert sealer_for(alice, "operator") == "operator:alice"
    assert sealer_for(alice, "operator", dev_operator="bob") == "operator:alice"  # the credential wins
    with pytest.raises(SealerRefused, match="only the issuer edge"):
        sealer_for(alice, "edge")


@pytest.mark.parametrize("holder", ["edge", "receiver"])
def test_an_edge_or_receiver_file_is_refused_operator_commands(holder: str) -> None:
    ring = issued_ring(AUTHORITY, holder)
    with pytest.raises(SealerRefused, match="issue --as operator:<name>") as info:
        sealer_for(ring, "operator", dev_operator="alice")
    assert "CODEC_DEV_OPERATOR" not in str(info.value)  # no development way out without the ring
    assert sealer_for(ring, "read") == holder


def test_edge_files_start_orders_and_the_receiver_cannot() -> None:
    assert sealer_for(issued_ring(AUTHORITY, "edge"), "edge") == "edge"
    with pytest.raises(SealerRefused):
        sealer_for(issued_ring(AUTHORITY, "receiver"), "edge")


def test_the_authority_ring_needs_a_named_development_operator(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(SealerRefused, match="CODEC_DEV_OPERATOR"):
        sealer_for(AUTHORITY, "operator")
    with caplog.at_level(logging.WARNING):
        assert sealer_for(AUTHORITY, "operator", dev_operator="alice") == "operator:alice"
    assert any("Development only" in m for m in caplog.messages)
    assert sealer_for(AUTHORITY, "edge") == "edge" and sealer_for(AUTHORITY, "read") == "worker"


def test_codec_from_settings_seals_as_the_decided_sealer(tmp_path: Path) -> None:
    ring = write_ring(tmp_path / "ring.json", AUTHORITY)
    alice = write_ring(tmp_path / "alice.json", issued_ring(AUTHORITY, "operator:alice"))
    assert codec_from_settings(CodecSettings(keys_file=ring)).sealer == "worker"
    dev = CodecSettings(keys_file=ring, dev_operator="bob")
    assert codec_from_settings(dev, sealer="operator").sealer == "operator:bob"
    assert codec_from_settings(CodecSettings(keys_file=alice), sealer="operator").sealer == "operator:alice"
    with pytest.raises(SealerRefused):
        codec_from_settings(CodecSettings(keys_file=alice), sealer="edge")
