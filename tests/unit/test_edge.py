"""The issuer's edge: validate, encrypt for D1, check, and hand Temporal nothing but the JWE."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwe, jwk

from contracts.card_order import OrderTiming
from d1.order import CardOrder
from d1.program import DEFAULT_PROGRAM_FILE
from d1.validation import InvalidOrder
from security.keys import KeyFileError
from starter.edge import ClearTrackDataRefused, KeyFile, OrderEdge
from tests.security.support import LEAK_CVV2, LEAK_PAN, LEAK_PVV, LEAK_TRACK1, LEAK_TRACK2, find_leaks, leak_card_data
from tests.support.orders import sample_order
from tests.support.validation import validate_order

LEAK_CVV1 = "619"


def _d1_key(tmp_path: Path, kid: str = "d1-enc-test") -> tuple[jwk.JWK, Path]:
    private = jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)
    public_file = tmp_path / f"{kid}.jwk"
    public_file.write_text(private.export_public())
    return private, public_file


def _leak_order(rid: str = "req-edge-0001", **overrides: Any) -> dict[str, Any]:
    members: dict[str, Any] = {
        "cardData": leak_card_data(cvv1=LEAK_CVV1),
        "trackData": {"track1": LEAK_TRACK1, "track2": LEAK_TRACK2},
        **overrides,
    }
    return sample_order(rid, **members)


@pytest.fixture
def keyed(tmp_path: Path) -> tuple[OrderEdge, jwk.JWK]:
    private, public_file = _d1_key(tmp_path)
    return OrderEdge(program_file=DEFAULT_PROGRAM_FILE, encryption_key=KeyFile(public_file)), private


def test_the_workflow_input_holds_the_jwe_and_the_masked_pan_only(keyed: tuple[OrderEdge, jwk.JWK]) -> None:
    edge, private = keyed
    prepared = edge.prepare(_leak_order(), timing=OrderTiming())
    text = prepared.input.model_dump_json()
    assert find_leaks("workflow input", [text, repr(prepared), prepared.summary, prepared.details]) == []
    assert LEAK_CVV1 not in json.dumps(prepared.input.submission.body if prepared.input.submission else {})
    assert prepared.ref.masked_pan == LEAK_PAN[:4] + "********" + LEAK_PAN[-4:]
    assert "order" not in prepared.input.model_dump() and prepared.input.submission is not None
    body = prepared.input.submission.body
    assert set(body) >= {"encryptedData", "cardProductId", "services", "shipment", "issuerRequestId"}
    assert "cardData" not in body and "trackData" not in body and "issuerId" not in body
    assert prepared.input.submission.encryption_kid == "d1-enc-test"

    token = jwe.JWE()
    token.deserialize(body["encryptedData"], key=private)
    header = json.loads(token.objects["protected"])
    assert header["alg"] == "ECDH-ES" and header["enc"] == "A256GCM" and header["kid"] == "d1-enc-test"
    plain = json.loads(token.payload)
    assert plain["pan"] == LEAK_PAN and plain["cvv2"] == LEAK_CVV2 and plain["pvv"] == LEAK_PVV
    assert plain["cvv1"] == LEAK_CVV1 and plain["trackData"] == {"track1": LEAK_TRACK1, "track2": LEAK_TRACK2}
    assert {p.key.name for p in prepared.search_attributes} >= {"IssuerId", "CardId", "IssuerRequestId"}


def test_invalid_orders_are_refused_with_every_field_and_no_value(keyed: tuple[OrderEdge, jwk.JWK]) -> None:
    edge, _ = keyed
    bad = _leak_order(cardData=leak_card_data(pan=LEAK_PAN[:-1] + "0", cvv2="12"))
    bad["services"]["pinMailler"] = True
    with pytest.raises(InvalidOrder) as info:
        edge.prepare(bad, timing=OrderTiming())
    paths = {e.path for e in info.value.errors}
    assert {"$.cardData.pan", "$.cardData.cvv2", "$.services.pinMailler"} <= paths
    assert "did you mean 'pinMailer'" in str(info.value)
    assert find_leaks("error", [str(info.value), repr(info.value.errors)]) == []


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"cvv": "123"}, "$.cvv"),
        ({"securityCode": "123"}, "$.securityCode"),
        ({"expMonth": "06"}, "$.expMonth"),
        ({"note": f"card {LEAK_PAN}"}, "$.note"),
    ],
)
def test_card_data_outside_the_jwe_is_refused_even_with_unknown_fields_allowed(
    keyed: tuple[OrderEdge, jwk.JWK], extra: dict[str, str], path: str
) -> None:
    edge, _ = keyed
    with pytest.raises(InvalidOrder) as info:
        edge.prepare({**_leak_order(), **extra}, timing=OrderTiming(), unknown_fields="warn")
    assert path in {e.path for e in info.value.errors}
    assert LEAK_PAN not in str(info.value)


def test_a_card_order_built_by_hand_gets_every_rule_and_the_card_data_check(keyed: tuple[OrderEdge, jwk.JWK]) -> None:
    edge, _ = keyed
    order = validate_order(_leak_order())
    assert isinstance(order, CardOrder)
    prepared = edge.prepare(order, timing=OrderTiming())  # valid: accepted as it is
    assert prepared.input.submission is not None
    with_extra = CardOrder.model_validate({**order.model_dump(mode="json", exclude_none=True), "cvv2": "123"})
    with pytest.raises(InvalidOrder) as info:
        edge.prepare(with_extra, timing=OrderTiming())
    assert "$.cvv2" in {e.path for e in info.value.errors}
    address_with_pan = _leak_order()
    address_with_pan["shipment"]["deliveryAddress"]["line2"] = "4929 7316 4058 2292"
    hand_built = CardOrder.model_validate(address_with_pan)
    with pytest.raises(InvalidOrder) as info:
        edge.prepare(hand_built, timing=OrderTiming())
    assert "$.shipment.deliveryAddress.line2" in {e.path for e in info.value.errors}


def test_the_d1_key_file_is_re_read_when_it_changes(tmp_path: Path) -> None:
    """Rotation: a new key from Thales takes effect without a restart."""
    _, first = _d1_key(tmp_path, "d1-enc-one")
    new_private, second = _d1_key(tmp_path, "d1-enc-two")
    live = tmp_path / "d1-encryption-public.jwk"
    live.write_text(first.read_text())
    edge = OrderEdge(program_file=DEFAULT_PROGRAM_FILE, encryption_key=KeyFile(live))
    first_order = edge.prepare(_leak_order("req-rot-1"), timing=OrderTiming()).input.submission
    assert first_order is not None and first_order.encryption_kid == "d1-enc-one"
    live.write_text(second.read_text())
    os.utime(live, (live.stat().st_atime, live.stat().st_mtime + 5))
    prepared = edge.prepare(_leak_order("req-rot-2"), timing=OrderTiming())
    assert prepared.input.submission is not None and prepared.input.submission.encryption_kid == "d1-enc-two"
    token = jwe.JWE()
    token.deserialize(prepared.input.submission.body["encryptedData"], key=new_private)
    assert json.loads(token.payload)["pan"] == LEAK_PAN


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (jwk.JWK.generate(kty="RSA", size=2048, kid="rsa"), "EC P-256"),
        (jwk.JWK.generate(kty="EC", crv="P-384", kid="p384"), "EC P-256"),
        (jwk.JWK.generate(kty="EC", crv="P-256"), "no kid"),
    ],
)
def test_only_an_ec_p256_public_key_with_a_kid_is_accepted(tmp_path: Path, key: jwk.JWK, problem: str) -> None:
    path = tmp_path / "key.jwk"
    path.write_text(key.export_public())
    with pytest.raises(KeyFileError, match=problem):
        KeyFile(path).current()


def test_a_private_key_or_a_missing_file_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    private = tmp_path / "private.jwk"
    private.write_text(jwk.JWK.generate(kty="EC", crv="P-256", kid="k").export_private())
    with pytest.raises(KeyFileError, match="private key"):
        KeyFile(private).current()
    with pytest.raises(KeyFileError, match="D1_ENCRYPTION_PUBLIC_KEY_FILE"):
        KeyFile(tmp_path / "absent.jwk").current()


def test_tracks_travel_in_clear_only_where_the_program_places_them_there(tmp_path: Path) -> None:
    """D1 does not document where trackData goes; the program decides (d1/assumptions.py)."""
    private, public_file = _d1_key(tmp_path)
    program = json.loads(DEFAULT_PROGRAM_FILE.read_text())
    program.setdefault("interface", {})["trackDataPlacement"] = "clear"
    clear_program = tmp_path / "program-clear-tracks.json"
    clear_program.write_text(json.dumps(program))
    # Full tracks in Temporal: refused unless development allows it (D1_DEV_ALLOW_CLEAR_TRACK_DATA).
    refusing = OrderEdge(program_file=clear_program, encryption_key=KeyFile(public_file))
    with pytest.raises(ClearTrackDataRefused, match="D1_DEV_ALLOW_CLEAR_TRACK_DATA"):
        refusing.prepare(_leak_order("req-clear-tracks"), timing=OrderTiming())
    edge = OrderEdge(program_file=clear_program, encryption_key=KeyFile(public_file), allow_clear_track_data=True)
    prepared = edge.prepare(_leak_order("req-clear-tracks"), timing=OrderTiming())
    assert prepared.input.submission is not None
    body = prepared.input.submission.body
    assert body["trackData"] == {"track1": LEAK_TRACK1, "track2": LEAK_TRACK2}
    token = jwe.JWE()
    token.deserialize(body["encryptedData"], key=private)
    assert "trackData" not in json.loads(token.payload)
    # The exception is the tracks only: any other card data outside the JWE is still refused.
    with pytest.raises(InvalidOrder):
        edge.prepare({**_leak_order("req-clear-2"), "cvv2": "123"}, timing=OrderTiming(), unknown_fields="warn")


def test_a_pem_d1_key_is_refused_it_carries_no_kid(tmp_path: Path) -> None:
    """jwcrypto would name a PEM key by its thumbprint, which is not D1's kid: every order
    would then come back CRYPTO_ERROR. A JWK with D1's kid is required."""
    pem = tmp_path / "d1.pem"
    pem.write_bytes(jwk.JWK.generate(kty="EC", crv="P-256").export_to_pem())
    with pytest.raises(KeyFileError, match="not a JWK"):
        KeyFile(pem).current()


def test_batch_limits_follow_the_settings_and_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    from starter.d1_batches import BatchLimits

    monkeypatch.setenv("D1_BATCH_MAX_CARDS", "800")
    monkeypatch.setenv("D1_BATCH_MAX_BYTES", "900000")
    assert BatchLimits.from_settings(1000).max_cards == 800
    assert BatchLimits.from_settings(500).max_cards == 500  # the program agreed fewer with Thales
    assert BatchLimits.from_settings(1000, batch_size=50) == BatchLimits(max_cards=50, max_bytes=900000)


def test_the_clear_track_setting_is_off_by_default_and_loud_when_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from settings import D1ClientSettings

    monkeypatch.delenv("D1_DEV_ALLOW_CLEAR_TRACK_DATA", raising=False)
    assert not OrderEdge.from_settings(D1ClientSettings()).allow_clear_track_data
    monkeypatch.setenv("D1_DEV_ALLOW_CLEAR_TRACK_DATA", "true")
    with caplog.at_level("WARNING", logger="starter.edge"):
        assert OrderEdge.from_settings(D1ClientSettings()).allow_clear_track_data
    assert "DEVELOPMENT ONLY" in caplog.text


def test_a_pinned_d1_key_refuses_another_key_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever can replace the key file cannot make the edge encrypt for a key of their own."""
    from settings import D1ClientSettings

    private, public_file = _d1_key(tmp_path, kid="d1-enc-2026")
    thumbprint = private.thumbprint()
    assert KeyFile(public_file, kids=frozenset({"d1-enc-2026"})).current().get("kid") == "d1-enc-2026"
    assert KeyFile(public_file, thumbprints=frozenset({thumbprint})).current().thumbprint() == thumbprint
    with pytest.raises(KeyFileError, match="D1_ENCRYPTION_KEY_KIDS"):
        KeyFile(public_file, kids=frozenset({"d1-enc-2027"})).current()
    # The attacker's key under D1's kid: the thumbprint gives it away.
    forged = jwk.JWK.generate(kty="EC", crv="P-256", kid="d1-enc-2026")
    public_file.write_text(forged.export_public() + "\n")
    with pytest.raises(KeyFileError, match="D1_ENCRYPTION_KEY_THUMBPRINTS"):
        KeyFile(public_file, kids=frozenset({"d1-enc-2026"}), thumbprints=frozenset({thumbprint})).current()
    monkeypatch.setenv("D1_ENCRYPTION_PUBLIC_KEY_FILE", str(public_file))
    monkeypatch.setenv("D1_ENCRYPTION_KEY_THUMBPRINTS", json.dumps([thumbprint]))
    edge = OrderEdge.from_settings(D1ClientSettings())
    with pytest.raises(KeyFileError, match="thumbprint"):
        edge.prepare(_leak_order("req-pinned"), timing=OrderTiming())
