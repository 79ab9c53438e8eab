"""Values from outside (a URL path's issuerId) are logged escaped and bounded: no forged lines."""

from __future__ import annotations

import json
import logging
import unicodedata

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from observability.logs import LOG_SAFE_LIMIT, log_safe
from receiver.app import create_app
from tests.unit.test_receiver_answers import FakeRouter, body


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_a_logged_value_has_no_control_characters_and_is_bounded(value: str) -> None:
    out = log_safe(value)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") for ch in out)
    # Escapes grow a character into at most 10 (\U0010ffff); the note on the cut is short.
    assert len(out) <= LOG_SAFE_LIMIT * 10 + 40
    if value.isprintable() and len(value) <= LOG_SAFE_LIMIT:
        assert out == value


def test_examples() -> None:
    assert log_safe("TESTISS001") == "TESTISS001"
    assert log_safe("TESTIS\n001") == "TESTIS\\n001"
    assert log_safe("x\r\n2026-12-07 INFO forged\u2028") == "x\\r\\n2026-12-07 INFO forged\\u2028"
    assert log_safe("a" * 100) == "a" * 64 + "...(+36 chars)"


async def test_the_receiver_logs_a_path_issuer_id_escaped(caplog: pytest.LogCaptureFixture) -> None:
    router = FakeRouter(failure=ValueError("a bug in routing"))
    app = create_app(router)  # type: ignore[arg-type]
    forged = "TESTIS%0A001"  # ten characters once decoded, one of them a newline
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        response = await http.post(f"/notifications/d1/v2/issuers/{forged}/cards", content=json.dumps(body()))
    assert response.status_code == 500
    logged = [r.getMessage() for r in caplog.records if r.name == "receiver" and r.levelno == logging.ERROR]
    assert logged and all("\n" not in m for m in logged) and "TESTIS\\n001" in logged[0]
