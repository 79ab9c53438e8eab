"""Outbound OAuth (D1 → issuer): the token response as D1's spec types it (``expires_in`` a
string of seconds, optional ``expires_at``) and as RFC 6749 does (a number)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.config import EmulatorSettings
from emulator.outbound import DEFAULT_TOKEN_LIFETIME_S, OutboundAuthError, OutboundHttp, token_lifetime_s
from emulator.testing import serve_app

NOW = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "lifetime"),
    [
        ({"expires_in": "900"}, 900.0),
        ({"expires_in": " 60 "}, 60.0),
        ({"expires_in": 900}, 900.0),
        ({"expires_in": 899.5}, 899.5),
        ({"expires_in": "0"}, 0.0),
        ({"expires_at": "2026-03-01T09:05:00.000Z"}, 300.0),
        ({"expires_at": "2026-03-01T10:00:00+01:00"}, 0.0),  # 09:00 UTC: already due
        ({"expires_in": "900", "expires_at": "2026-03-01T09:01:00Z"}, 60.0),  # expires_at wins
        ({"expires_at": "2026-03-01T08:00:00Z"}, 0.0),
        ({}, DEFAULT_TOKEN_LIFETIME_S),
        ({"expires_in": None}, DEFAULT_TOKEN_LIFETIME_S),
    ],
)
def test_token_lifetime(body: dict[str, Any], lifetime: float) -> None:
    assert token_lifetime_s(body, now=NOW) == lifetime


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": "15 minutes"},
        {"expires_in": "-5"},
        {"expires_in": -5},
        {"expires_in": True},
        {"expires_in": [900]},
        {"expires_at": "tomorrow"},
        {"expires_at": "2026-03-01T09:05:00"},  # no time zone
        {"expires_at": 1772355900},
    ],
)
def test_unreadable_token_lifetimes_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="expires_"):
        token_lifetime_s(body, now=NOW)


@pytest.mark.parametrize(
    ("token_body", "token_requests"),
    [
        ({"access_token": "t-1", "token_type": "Bearer", "expires_in": "900"}, 1),  # cached
        ({"access_token": "t-1", "token_type": "Bearer", "expires_in": 900}, 1),
        ({"access_token": "t-1", "token_type": "Bearer", "expires_in": "10"}, 2),  # inside the refresh margin
    ],
    ids=["string", "number", "short"],
)
async def test_notifications_carry_the_issuers_token(
    tmp_path: Path, token_body: dict[str, Any], token_requests: int
) -> None:
    seen: dict[str, list[Any]] = {"tokens": [], "authorizations": []}

    async def token(request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        seen["tokens"].append((request.headers.get("authorization"), form.get("grant_type")))
        return JSONResponse(token_body)

    async def notify(request: Request) -> Response:
        seen["authorizations"].append(request.headers.get("authorization"))
        return Response(status_code=204)

    app = Starlette(
        routes=[Route("/oauth2/token", token, methods=["POST"]), Route("/notify", notify, methods=["POST"])]
    )
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    async with serve_app(app) as url:
        settings = EmulatorSettings(
            state_dir=tmp_path / "state",
            receiver_url=url,
            outbound_oauth_token_url=f"{url}/oauth2/token",
            outbound_oauth_client_id="d1-client",
            outbound_oauth_client_secret_file=secret,
        )
        http = OutboundHttp(settings)
        try:
            for _ in range(2):
                response = await http.post("TESTISS001", f"{url}/notify", content=b"{}", headers={})
                assert response.status_code == 204
        finally:
            await http.aclose()
    assert seen["authorizations"] == ["Bearer t-1", "Bearer t-1"]
    assert len(seen["tokens"]) == token_requests
    assert seen["tokens"][0] == ("Basic ZDEtY2xpZW50OnMzY3JldA==", ["client_credentials"])


async def test_an_unreadable_token_response_is_an_auth_error(tmp_path: Path) -> None:
    async def token(request: Request) -> Response:
        return Response(
            json.dumps({"access_token": "secret-token", "expires_in": "soon"}), media_type="application/json"
        )

    app = Starlette(routes=[Route("/oauth2/token", token, methods=["POST"])])
    async with serve_app(app) as url:
        settings = EmulatorSettings(
            state_dir=tmp_path / "state",
            receiver_url=url,
            outbound_oauth_token_url=f"{url}/oauth2/token",
            outbound_oauth_client_id="d1-client",
            outbound_oauth_client_secret="s3cret",
        )
        http = OutboundHttp(settings)
        try:
            with pytest.raises(OutboundAuthError) as error:
                await http.post("TESTISS001", f"{url}/notify", content=b"{}", headers={})
        finally:
            await http.aclose()
    assert "expires_in" in str(error.value) and "secret-token" not in str(error.value)
