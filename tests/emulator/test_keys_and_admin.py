"""Encryption key rotation (active / previous / retired) and the sandbox admin API switch."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from emulator_support import TEST_PAN, Emulator
from jwcrypto import jwk

from emulator.keys import KEYRING_FILE, PUBLIC_KEY_FILE, load_or_create_encryption_keys

CARD = {"pan": TEST_PAN, "exp": "2906"}


def _encrypt_for(emu: Emulator, public: jwk.JWK) -> str:
    saved = emu.encryption_public
    emu.encryption_public = public
    try:
        return emu.encrypt(CARD)
    finally:
        emu.encryption_public = saved


async def _order_for(emu: Emulator, token: str, card_id: str, public: jwk.JWK) -> Any:
    body = emu.order_body(f"req-{card_id}")
    body["encryptedData"] = _encrypt_for(emu, public)
    return await emu.order(token, card_id=card_id, body=body)


async def test_rotation_publishes_a_new_key_and_keeps_the_old_one_accepted(emu: Emulator) -> None:
    token = await emu.token()
    public_file = emu.tmp_path / "state" / PUBLIC_KEY_FILE
    old = jwk.JWK(**json.loads(public_file.read_text()))
    rotated = await emu.client.post("/_emulator/keys/rotate")
    assert rotated.status_code == 200
    keyring = rotated.json()
    new = jwk.JWK(**json.loads(public_file.read_text()))
    assert new["kid"] != old["kid"] and keyring["active"] == new["kid"]
    assert [(k["kid"], k["state"]) for k in keyring["keys"]] == [(old["kid"], "previous"), (new["kid"], "active")]
    assert (await emu.client.get("/_emulator/public-key")).json() == new.export_public(as_dict=True)
    assert '"d":' not in rotated.text and '"jwk"' not in rotated.text  # no key material

    assert (await _order_for(emu, token, "card-k1", old)).status_code == 202  # previous: still accepted
    assert (await _order_for(emu, token, "card-k2", new)).status_code == 202

    retired = await emu.client.post("/_emulator/keys/retire", json={"kid": old["kid"]})
    assert retired.status_code == 200
    assert [k["state"] for k in retired.json()["keys"]] == ["retired", "active"]
    refused = await _order_for(emu, token, "card-k3", old)
    assert refused.status_code == 400
    assert refused.json() == {
        "errorCode": "CRYPTO_ERROR",
        "error": "$.encryptedData",
        "reason": "the key of this kid is retired",
    }


async def test_rotation_can_retire_the_previous_key_at_once(emu: Emulator) -> None:
    token = await emu.token()
    old = emu.encryption_public
    response = await emu.client.post("/_emulator/keys/rotate", json={"retirePrevious": True})
    assert [k["state"] for k in response.json()["keys"]] == ["retired", "active"]
    refused = await _order_for(emu, token, "card-k4", old)
    assert (refused.status_code, refused.json()["errorCode"]) == (400, "CRYPTO_ERROR")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kid": "no-such-kid"}, "kid: not a key of this emulator"),
        ("active", "kid: the active key cannot be retired (rotate first)"),
        ({"kid": 7}, 'body must be {"kid": "<a previous key\'s kid>"}'),
    ],
    ids=["unknown", "active", "not-a-string"],
)
async def test_retiring_needs_a_previous_key(emu: Emulator, body: Any, reason: str) -> None:
    if body == "active":
        body = {"kid": emu.encryption_public["kid"]}
    response = await emu.client.post("/_emulator/keys/retire", json=body)
    assert response.status_code == 400
    assert response.json()["reason"] == reason


def test_the_keyring_survives_a_restart_without_retired_key_material(tmp_path: Path) -> None:
    first = load_or_create_encryption_keys(tmp_path)
    kid0 = first.kid
    first.rotate()
    kid1 = first.kid
    first.rotate(retire_previous=True)
    kid2 = first.kid
    assert stat.S_IMODE(os.stat(tmp_path / KEYRING_FILE).st_mode) == 0o600
    stored = json.loads((tmp_path / KEYRING_FILE).read_text())
    assert [("jwk" in k, k["state"]) for k in stored["keys"]] == [
        (True, "previous"),
        (False, "retired"),
        (True, "active"),
    ]
    again = load_or_create_encryption_keys(tmp_path)
    assert again.kid == kid2
    assert again.lookup(kid0)[0] == "previous" and again.lookup(kid0)[1] is not None
    assert again.lookup(kid1) == ("retired", None)
    assert again.lookup("never") == (None, None)
    assert json.loads((tmp_path / PUBLIC_KEY_FILE).read_text())["kid"] == kid2


ADMIN_CALLS = [
    ("GET", "/_emulator/stats"),
    ("GET", "/_emulator/faults"),
    ("POST", "/_emulator/faults"),
    ("GET", "/_emulator/captured"),
    ("GET", "/_emulator/orders"),
    ("GET", "/_emulator/scenarios"),
    ("POST", "/_emulator/scenarios"),
    ("GET", "/_emulator/groups"),
    ("POST", "/_emulator/groups"),
    ("POST", "/_emulator/reset"),
    ("GET", "/_emulator/public-key"),
    ("GET", "/_emulator/keys"),
    ("POST", "/_emulator/keys/rotate"),
    ("POST", "/_emulator/keys/retire"),
    ("GET", "/_emulator/tracking"),
]


async def test_the_admin_api_is_off_unless_enabled(emulator_factory: Any) -> None:
    emu: Emulator = await emulator_factory(admin_api_enabled=False)
    kid = emu.encryption_public["kid"]
    for method, path in ADMIN_CALLS:
        response = await emu.client.request(method, path, json={})
        assert response.status_code == 404, (method, path)
        assert response.json()["errorCode"] == "NOT_FOUND"
    assert (await emu.client.get("/_emulator/health")).json() == {"status": "ok"}
    assert emu.state.encryption_keys.kid == kid  # nothing rotated
    # The D1 API itself is unaffected.
    token = await emu.token()
    assert (await emu.order(token)).status_code == 202


async def test_the_admin_api_answers_when_enabled(emu: Emulator) -> None:
    for method, path in ADMIN_CALLS:
        if path.endswith(("/rotate", "/retire", "/reset")):
            continue
        body = {"windowMs": 1000} if path.endswith("/groups") else {}
        response = await emu.client.request(method, path, **({"json": body} if method == "POST" else {}))
        assert response.status_code == 200, (method, path, response.text)


async def test_scenario_kinds_say_which_are_documented(emu: Emulator) -> None:
    kinds = (await emu.client.get("/_emulator/scenarios")).json()["kinds"]
    assert {k: v["source"] for k, v in kinds.items()} == {
        "DATA_EXCEPTION": "D",
        "CARD_PROD_EXCEPTION": "G",
        "ON_HOLD": "G",
        "RETURNED": "G",
        "NOT_DELIVERED": "G",
        "ACTIVATED": "D",
        "ACTIVATED_BEFORE_DELIVERY": "G",
    }
