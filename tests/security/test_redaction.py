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

from security.redaction import (
    MASK,
    RedactingFilter,
    RedactingSpanExporter,
    install_log_redaction,
    redact_attributes,
    redact_exception,
    redact_mapping,
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

MASKED_PAN = LEAK_PAN[:6] + "******" + LEAK_PAN[-4:]


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
    attrs = redact_attributes({"d1.card.pan": LEAK_PAN, "card.cvv2": LEAK_CVV2, "http.url": f"/x?q={LEAK_PAN}",
                               "order.count": 3})
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
