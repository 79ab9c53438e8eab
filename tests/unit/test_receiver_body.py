"""The receiver parses a notification body once (pydantic's JSON parser) yet answers every
body exactly as the reference path does: ``json.loads``, the operations count (413 before
any field problem), then validation of the Python value (400 with field-level reasons)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from d1.notifications import NotificationBody
from receiver.app import parse_body

MAX_OPS = 3

OPERATION = {
    "operationId": "op-1",
    "operation": "PRODUCE",
    "status": "PENDING",
    "startTime": "2030-01-01T00:00:00.000Z",
    "cardId": "card-1",
    "issuerRequestId": "req-1",
    "details": {"status": "CARD_PROD_ONGOING", "shipment": {"status": "InTransit", "carrier": "dhl"}},
}


def reference(raw: bytes) -> tuple[int, Any]:
    """The receiver's answer before the fast path: json.loads, count, validate."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return 400, {"error": "body is not valid JSON (UTF-8)"}
    operations = data.get("operations") if isinstance(data, dict) else None
    if isinstance(operations, list) and len(operations) > MAX_OPS:
        return 413, {"error": f"at most {MAX_OPS} operations per notification (agreed at onboarding)"}
    try:
        body = NotificationBody.model_validate(data)
    except ValidationError as err:
        fields = [
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
            for e in err.errors(include_input=False, include_url=False)
        ]
        return 400, {"error": "notification body does not match the D1 contract", "fields": fields}
    except RecursionError:
        return 400, {"error": "body is nested too deeply"}
    return 204, body.model_dump()


def same(a: tuple[int, Any], b: tuple[int, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def answer(raw: bytes) -> tuple[int, Any]:
    got = parse_body(raw, MAX_OPS)
    if isinstance(got, NotificationBody):
        return 204, got.model_dump()
    return got.status_code, json.loads(bytes(got.body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
# Operations that are valid, or valid with one member replaced by anything.
operations = st.one_of(
    st.just(OPERATION),
    st.builds(lambda k, v: {**OPERATION, k: v}, st.sampled_from(sorted(OPERATION)), json_values),
    json_values,
)
bodies = st.one_of(
    st.builds(lambda ops: {"operations": ops}, st.lists(operations, max_size=MAX_OPS + 2)),
    st.builds(
        lambda ops, extra: {"operations": ops, **extra},
        st.lists(operations, max_size=2),
        st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    ),
    json_values,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_json_bodies_get_the_reference_answer(value: Any) -> None:
    raw = json.dumps(value).encode()  # NaN and Infinity included: json.loads accepts them
    # Compared as JSON text: a NaN the body carries is never equal to itself as a float.
    assert same(answer(raw), reference(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_get_the_reference_answer(raw: bytes) -> None:
    assert answer(raw) == reference(raw)


def test_edge_cases_get_the_reference_answer() -> None:
    valid = json.dumps({"operations": [OPERATION]})
    for raw in (
        b"",
        b"\xff\xfe\xfa invalid utf-8",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"operations": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "\ufeff".encode() + valid.encode(),  # a UTF-8 byte-order mark
        valid.encode("utf-16"),  # json.loads detects UTF-16 and UTF-32
        valid.encode("utf-32"),
        valid.replace("PENDING", "PEN\\ud800DING").encode(),  # a lone surrogate escape
        valid.replace("PENDING", "PEN\tDING").encode(),  # a raw control character
        valid.encode() + b" x",
        b'{"operations": [], "operations": "twice"}',
        json.dumps({"operations": [OPERATION] * (MAX_OPS + 1)}).encode(),
        json.dumps({"operations": [{"operationId": 1}] * (MAX_OPS + 1)}).encode(),
        json.dumps({"operations": [OPERATION], "n": 10**400}).encode(),
        b'{"operations": [], "x": 1e400}',
    ):
        assert answer(raw) == reference(raw), raw[:60]


def test_a_valid_body_is_accepted() -> None:
    status, body = answer(json.dumps({"operations": [OPERATION, OPERATION]}).encode())
    assert status == 204 and len(body["operations"]) == 2
