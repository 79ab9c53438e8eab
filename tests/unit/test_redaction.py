"""The redaction layer: field names, PAN-shaped numbers, tracks, credentials; logs and spans."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from d1.card_data import luhn_valid
from security.redaction import (
    MASK,
    RedactingFilter,
    RedactingSpanExporter,
    install_log_redaction,
    redact_attributes,
    redact_exception,
    redact_mapping,
    redact_record,
    redact_text,
)
from tests.security.support import (
    LEAK_CVV2,
    LEAK_EXP,
    LEAK_PAN,
    LEAK_PVV,
    LEAK_TRACK1,
    LEAK_TRACK2,
    find_leaks,
    leak_card_data,
    leak_track_data,
)

MASKED_PAN = LEAK_PAN[:4] + "********" + LEAK_PAN[-4:]


@pytest.mark.parametrize(
    "text",
    [
        f"pan {LEAK_PAN} here",
        f"pan {LEAK_PAN[:4]} {LEAK_PAN[4:8]} {LEAK_PAN[8:12]} {LEAK_PAN[12:]} spaced",
        f"pan {LEAK_PAN[:4]}-{LEAK_PAN[4:8]}-{LEAK_PAN[8:12]}-{LEAK_PAN[12:]} dashed",
        f"{{'pan': '{LEAK_PAN}', 'cvv2': '{LEAK_CVV2}'}}",
        f'{{"cvv2": "{LEAK_CVV2}", "pvv": "{LEAK_PVV}", "exp": "{LEAK_EXP}"}}',
        f"cvv2={LEAK_CVV2}&pvv={LEAK_PVV}&exp={LEAK_EXP}",
        f"track1={LEAK_TRACK1}",
        f"raw track {LEAK_TRACK2} and {LEAK_TRACK1}",
    ],
)
def test_redact_text_removes_card_data(text: str) -> None:
    out = redact_text(text)
    assert find_leaks("redacted", [out], include_name=False) == [], out


def test_redact_text_keeps_first_six_last_four_and_innocent_numbers() -> None:
    assert redact_text(f"card {LEAK_PAN}") == f"card {MASKED_PAN}"
    # Not Luhn-valid, or too short: left alone (ids, timestamps, ports).
    assert redact_text("order 4929731640582293 at port 51234") == "order 4929731640582293 at port 51234"
    assert redact_text("encryptedData: month must be 01-12 (YYMM); exp: month") == (
        "encryptedData: month must be 01-12 (YYMM); exp: month"
    )
    assert redact_text("Authorization: Bearer abcdefghijklmnop") == f"Authorization: Bearer {MASK}"


def test_redact_mapping_by_field_name() -> None:
    order = {
        "cardData": leak_card_data(cvv1="123", panSequenceNumber="01"),
        "trackData": leak_track_data(),
        "encryptedData": "eyJhbGciOi.x.y.z.w",
        "shipment": {"deliveryAddress": {"firstName": "Quirina", "line1": "1 Secret Rd", "city": "Oslo"}},
        "cardId": "card-1",
        "nested": [{"cvv2": 123, "note": f"see {LEAK_PAN}"}],
        "access_token": "tok",
    }
    out = redact_mapping(order)
    assert out["cardData"]["pan"] == MASKED_PAN
    assert {k: v for k, v in out["cardData"].items() if k != "pan"} == {
        k: MASK for k in order["cardData"] if k != "pan"
    }
    assert out["trackData"] == {"track1": MASK, "track2": MASK}
    assert out["encryptedData"] == order["encryptedData"]  # ciphertext is fine
    assert out["shipment"]["deliveryAddress"] == {"firstName": MASK, "line1": MASK, "city": MASK}
    assert out["cardId"] == "card-1"
    assert out["nested"] == [{"cvv2": MASK, "note": f"see {MASKED_PAN}"}]
    assert out["access_token"] == MASK
    # Operators may see PII (codec server default); card data still masked.
    operator_view = redact_mapping(order, pii=False)
    assert operator_view["shipment"] == order["shipment"]
    assert operator_view["cardData"]["pan"] == MASKED_PAN
    assert find_leaks("mapping", [json.dumps(out)]) == []


def test_redact_attributes_and_exceptions() -> None:
    attrs = redact_attributes(
        {"d1.card.pan": LEAK_PAN, "card.cvv2": LEAK_CVV2, "http.url": f"/x?q={LEAK_PAN}", "order.count": 3}
    )
    assert attrs == {"d1.card.pan": MASKED_PAN, "card.cvv2": MASK, "http.url": f"/x?q={MASKED_PAN}", "order.count": 3}
    assert redact_exception(ValueError(f"bad pan {LEAK_PAN}")) == f"ValueError: bad pan {MASKED_PAN}"


@pytest.fixture
def isolated_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(card)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.security.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def test_redacting_filter_covers_message_args_extras_and_exceptions(
    isolated_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = isolated_logger
    logger.info("pan=%s cvv2=%s", LEAK_PAN, LEAK_CVV2, extra={"card": {"pan": LEAK_PAN, "pvv": LEAK_PVV}})
    try:
        raise ValueError(f"cannot use {LEAK_TRACK2}")
    except ValueError:
        logger.exception("failed for %s", LEAK_PAN, extra={"card": "-"})
    logger.info("port %d ok", 8443, extra={"card": "-"})
    out = stream.getvalue()
    assert find_leaks("log", [out], include_name=False) == [], out
    assert MASKED_PAN in out and "ValueError: cannot use ***" in out and "port 8443 ok" in out


def test_install_log_redaction_redacts_records_for_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    previous = logging.getLogRecordFactory()
    try:
        install_log_redaction()
        install_log_redaction()  # idempotent
        with caplog.at_level(logging.INFO):
            logging.getLogger("tests.security.anywhere").info("card %s exp=%s", LEAK_PAN, LEAK_EXP)
            access = logging.getLogger("tests.security.access")  # shaped like uvicorn's access records
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/x", "1.1", 200)
        assert caplog.records[0].getMessage() == f"card {MASKED_PAN} exp={MASK}"
        # Records without card data keep their arguments (uvicorn's access formatter unpacks them).
        assert caplog.records[1].args == ("127.0.0.1:1", "GET", "/x", "1.1", 200)
    finally:
        logging.setLogRecordFactory(previous)


def test_redacting_span_exporter() -> None:
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(inner)))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("submit", attributes={"card.pan": LEAK_PAN, "note": LEAK_TRACK1}) as span:
        span.record_exception(ValueError(f"pan {LEAK_PAN}"))
    (exported,) = inner.get_finished_spans()
    assert find_leaks("span", [exported.to_json()], include_name=False) == []
    assert exported.attributes is not None and exported.attributes["card.pan"] == MASKED_PAN


def test_the_leak_scanner_finds_what_it_must() -> None:
    """The leak test is only as good as its scanner: it must see through encodings."""
    import base64

    payload = base64.b64encode(json.dumps({"cardData": {"pan": LEAK_PAN}}).encode()).decode()
    assert find_leaks("history", [json.dumps({"payloads": [{"data": payload}]})])
    assert find_leaks("log", [f"{LEAK_PAN[:4]} {LEAK_PAN[4:8]}-{LEAK_PAN[8:]}"])
    assert find_leaks("log", [f"{{'cvv2': '{LEAK_CVV2}'}}"])
    assert find_leaks("log", [f'{{\\"pvv\\": \\"{LEAK_PVV}\\"}}'])  # JSON inside a JSON string
    assert find_leaks("log", [f"exp={LEAK_EXP}&x=1"])
    assert not find_leaks("log", [f"port 4{LEAK_CVV2} id ab{LEAK_PVV}cd requestId 2b509f1d-{LEAK_PVV}-4d6a"])


# ---------------------------------------------------------------- more forms (issue 10)

P = LEAK_PAN
G = (P[:4], P[4:8], P[8:12], P[12:])  # 4929 7316 4058 2292


@pytest.mark.parametrize(
    "written",
    [
        ".".join(G),
        "/".join(G),
        "  ".join(G),
        "   ".join(G),
        f"{G[0]} - {G[1]}.{G[2]}/{G[3]}",
        f"{G[0]}\t{G[1]}\t{G[2]}\t{G[3]}",
        f"{P[:4]} {P[4:10]} {P[10:]}",  # 4-6-6 (Amex-like grouping)
        " ".join(P),  # digit by digit
    ],
)
def test_pan_with_other_separators_is_masked(written: str) -> None:
    assert redact_text(f"card <{written}> seen") == f"card <{MASKED_PAN}> seen"


def test_pan_next_to_other_numbers_shows_no_more_than_six_and_four() -> None:
    assert redact_text(f"{' '.join(G)} 3108") == f"{MASKED_PAN} 3108"
    assert redact_text(f"/cards/{P}/orders/1234") == f"/cards/{MASKED_PAN}/orders/1234"
    out = redact_text(f"ref 12 {' '.join(G)}")
    assert find_leaks("text", [out], include_name=False) == [] and G[1] not in out and G[2] not in out


@pytest.mark.parametrize(
    "innocent",
    [
        "order 4929731640582293 failed",  # not Luhn-valid
        "2024/01/15 2024/01/16 and 2024-01-15 12:30:45.123456",
        "peers 10.100.200.300 192.168.1.1 192.168.100.200.1234",
        "id 12345678-1234-1234-1234-123456789012",
        "version 1.2.3.4.5.6.7.8.9.10.11.12",
        "ts=17000000001234567890123 op 2b509f1d-5b3c-4d6a-9f4e-1234567890ab",
        "cid=123e4567-e89b-12d3-a456-426614174000 port: 8443 attempt=3",
    ],
)
def test_ids_dates_and_addresses_stay_as_they_are(innocent: str) -> None:
    assert redact_text(innocent) == innocent


CVV_NAMES = [
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "cvn",
    "cvn2",
    "cid",
    "csc",
    "securityCode",
    "security_code",
    "cardSecurityCode",
    "cardVerificationValue",
    "card_verification_code",
    "cardCode",
    "card.cvv2",
]
EXPIRY_NAMES = [
    "exp",
    "expiry",
    "expMonth",
    "expYear",
    "exp_month",
    "expiration",
    "expirationDate",
    "expiryDate",
    "expirationYear",
]


@pytest.mark.parametrize("name", CVV_NAMES + EXPIRY_NAMES + ["pvv", "pin"])
@pytest.mark.parametrize(
    "form",
    [
        "{name}={value}",
        "{name}: {value}",
        '"{name}": "{value}"',
        '"{name}":{value}',
        "'{name}': '{value}'",
        '{{\\"{name}\\": \\"{value}\\"}}',
        "?a=1&{name}={value}&b=2",
    ],
)
def test_card_fields_in_text_are_masked_under_every_common_name(name: str, form: str) -> None:
    value = "08/31" if name in EXPIRY_NAMES and "Year" not in name else "8371"
    text = "before " + form.format(name=name, value=value) + " after"
    out = redact_text(text)
    assert value not in out, out
    assert out == "before " + form.format(name=name, value=MASK) + " after"


@pytest.mark.parametrize("name", CVV_NAMES + EXPIRY_NAMES + ["pvv", "pinBlock", "track2", "trackData"])
def test_card_fields_as_mapping_keys_are_masked_at_any_depth(name: str) -> None:
    doc = {"order": {"items": [{"card": {name: "8371"}}, ({name: 8371},)], "set": [{name: "x"}]}}
    out = redact_mapping(doc)
    assert out == {"order": {"items": [{"card": {name: MASK}}, ({name: MASK},)], "set": [{name: MASK}]}}
    assert isinstance(out["order"]["items"][1], tuple)  # containers keep their type


def test_nested_values_of_every_container_type_are_redacted() -> None:
    from dataclasses import dataclass

    from pydantic import BaseModel

    class Card(BaseModel):
        pan: str
        note: str

    @dataclass
    class Holder:
        cards: list[Card]
        memo: str

    doc = {
        "a": [{"b": ({"c": [f"see {P}"]},)}],
        "tuple": (P, {"cvv2": LEAK_CVV2}),
        "set": {P},
        "frozen": frozenset({f"x {P}"}),
        "model": Card(pan=P, note=f"copy {P}"),
        "dataclass": Holder(cards=[Card(pan=P, note="-")], memo=f"track {LEAK_TRACK2}"),
        "number": int(P),
        "bytes": f"raw {P}".encode(),
        "object": ValueError(f"bad {P}"),
    }
    out = redact_mapping(doc)
    assert out["a"] == [{"b": ({"c": [f"see {MASKED_PAN}"]},)}]
    assert out["tuple"] == (MASKED_PAN, {"cvv2": MASK})
    assert out["set"] == {MASKED_PAN} and out["frozen"] == frozenset({f"x {MASKED_PAN}"})
    assert out["model"] == {"pan": MASKED_PAN, "note": f"copy {MASKED_PAN}"}
    assert out["dataclass"] == {"cards": [{"pan": MASKED_PAN, "note": "-"}], "memo": f"track {MASK}"}
    assert out["number"] == MASKED_PAN and out["bytes"] == f"raw {MASKED_PAN}" and out["object"] == f"bad {MASKED_PAN}"
    assert find_leaks("mapping", [repr(out)], include_name=False) == []
    # Innocent values keep their type.
    innocent = {"n": 12, "big": 4929731640582293, "s": {"a"}, "t": ("x", 1)}
    assert redact_mapping(innocent) == innocent


def test_mapping_keys_that_are_card_data_are_masked() -> None:
    other = "4929731111412292"  # same first 6 / last 4, Luhn-valid
    assert other != P and other[:6] == P[:6] and other[-4:] == P[-4:] and luhn_valid(other)
    out = redact_mapping({P: {"status": "ok"}, int(other): 1, LEAK_TRACK2: "t", "cardId": "card-1"})
    assert out == {MASKED_PAN: {"status": "ok"}, f"{MASKED_PAN}#2": 1, MASK: "t", "cardId": "card-1"}
    assert redact_mapping({"cardData": {P: "x"}}) == {"cardData": {MASKED_PAN: MASK}}
    assert find_leaks("keys", [repr(out)], include_name=False) == []


# ---------------------------------------------------------------- log records keep their shape


def _record(msg: str, *args: object, name: str = "uvicorn.access") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d'
UUID = "123e4567-e89b-12d3-a456-426614174000"
LONG_ID = "4929731640582293"  # 16 digits, not Luhn-valid: an id, left alone
OP_ID = "17000000001234567890123"


def test_uvicorn_access_records_are_redacted_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    """An access record without card data keeps its five arguments, so uvicorn's own
    AccessFormatter still works on it; one with card data in its path carries the redacted
    line as its message, which the product's formatters print (the receiver hands uvicorn's
    records to them: observability/logs.py)."""
    from uvicorn.logging import AccessFormatter

    from observability.logs import TEXT_FORMAT, TextFormatter

    clean_path = f"/v1/orders/{UUID}?ref={LONG_ID}&op={OP_ID}"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    )
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.security.uvicorn.access")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info(ACCESS_FORMAT, "127.0.0.1:5123", "GET", clean_path, "1.1", 200)
    finally:
        logger.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err
    assert stream.getvalue() == f'INFO:     127.0.0.1:5123 - "GET {clean_path} HTTP/1.1" 200 OK\n'

    path = f"/v1/cards/{P}/orders/{UUID}?ref={LONG_ID}&op={OP_ID}"
    safe_path = f"/v1/cards/{MASKED_PAN}/orders/{UUID}?ref={LONG_ID}&op={OP_ID}"
    record = redact_record(_record(ACCESS_FORMAT, "127.0.0.1:5123", "GET", path, "1.1", 200))
    assert record.msg == f'127.0.0.1:5123 - "GET {safe_path} HTTP/1.1" 200' and not record.args
    record.workflow_id = record.trace_id = "-"
    assert (
        TextFormatter(TEXT_FORMAT)
        .format(record)
        .endswith(f'[wf=- trace=-] 127.0.0.1:5123 - "GET {safe_path} HTTP/1.1" 200')
    )


def test_a_message_with_card_data_is_redacted_as_formatted_text() -> None:
    record = redact_record(_record("pan=%s cvv2=%s op=%s", P, LEAK_CVV2, OP_ID, name="x"))
    assert record.getMessage() == f"pan={MASKED_PAN} cvv2={MASK} op={OP_ID}" and not record.args
    record = redact_record(_record("%(card)s cvv2=%(c)s", {"card": P, "c": LEAK_CVV2}, name="x"))
    assert record.getMessage() == f"{MASKED_PAN} cvv2={MASK}"
    # A PAN split over two arguments is whole in the formatted text, and masked there.
    record = redact_record(_record("card %s%s", P[:8], P[8:], name="x"))
    assert record.getMessage() == f"card {MASKED_PAN}"
    record = redact_record(_record("card %d", int(P), name="x"))
    assert record.getMessage() == f"card {MASKED_PAN}"
    # A broken format call: its template and arguments are logged as text, redacted.
    record = redact_record(_record("card %s %s", P, name="x"))
    assert record.getMessage() == f"card %s %s (arguments: ('{MASKED_PAN}',))"
    # Nothing to mask: the record keeps its template and arguments.
    record = redact_record(_record("order %s attempt %d", "req-1", 3, name="x"))
    assert record.msg == "order %s attempt %d" and record.args == ("req-1", 3)


def test_extras_are_redacted_when_the_record_factory_already_ran() -> None:
    previous = logging.getLogRecordFactory()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(card)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_log_redaction()  # factory + a filter on the root handlers
        logging.getLogger("tests.security.factory").warning("hi", extra={"card": {"pan": P, "cvv2": LEAK_CVV2}})
    finally:
        root.removeHandler(handler)
        logging.setLogRecordFactory(previous)
    assert stream.getvalue() == f"hi {{'pan': '{MASKED_PAN}', 'cvv2': '***'}}\n"


def test_exception_groups_and_notes_are_redacted() -> None:
    err = ValueError("plain")
    err.add_note(f"pan {P}")
    group = ExceptionGroup("several", [err, KeyError(f"track {LEAK_TRACK2}")])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), (ExceptionGroup, group, None))
    redact_record(record)
    # The live exception still holds card data: the record keeps only its redacted text,
    # which every logging.Formatter prints as it is.
    assert record.exc_info is None and record.exc_text is not None
    shown = logging.Formatter("%(message)s").format(record)
    assert find_leaks("group", [shown], include_name=False) == [], shown
    assert "several" in shown and "plain" in shown and "KeyError" in shown and MASKED_PAN in shown
    # An exception without card data keeps it (nothing to hide from any formatter).
    clean = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), (ValueError, ValueError("x"), None))
    assert redact_record(clean).exc_info is not None and clean.exc_text == "ValueError: x"
