"""``python -m security.codec_server``: the codec server the Temporal UI and CLI call to read
payloads, for authenticated operators holding the read role, card data always masked
(docs/security.md, "Codec server"). It only decodes: sealing is each process's own business,
with its role's key, so nobody signed in here can forge a message. Only the last path segment
selects the action, so the endpoint mounts at any depth; uvicorn's access log stays off
because an old endpoint may still carry a token in its path.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

import uvicorn
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from security.bounded_body import BodyTooLarge, read_bounded
from security.codec import CodecKeyError, load_codec
from security.codec_auth import CodecAuth, CodecAuthConfigError, Refused
from security.oidc import is_loopback_host
from security.redaction import install_log_redaction, redact_mapping, redact_text
from settings import CodecServerSettings, CodecSettings

log = logging.getLogger("security.codec_server")

MAX_BODY_BYTES = 8 * 1024 * 1024
WITHHELD = "<payload withheld by the codec server: not JSON, cannot be masked>"
_JSON_ENCODINGS = (b"json/plain", b"json/protobuf")


def _withheld() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(WITHHELD).encode("utf-8"))


def mask_payload(payload: Payload, *, mask_pii: bool) -> Payload:
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return payload
    if encoding not in _JSON_ENCODINGS:
        return _withheld()
    try:
        value = json.loads(payload.data)
    except ValueError:
        return _withheld()
    masked = redact_mapping(value, pii=mask_pii)
    return Payload(
        metadata=dict(payload.metadata),
        data=json.dumps(masked, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
    )


def create_app(codec: PayloadCodec, *, auth: CodecAuth, cors_origins: Sequence[str]) -> Starlette:
    async def codec_endpoint(request: Request) -> Response:
        segments = [s for s in request.url.path.split("/") if s]
        action = segments[-1] if segments else ""
        if action == "encode":
            # What the UI calls to send a signal, start or reset with input: the operators'
            # console does none of that (docker-compose.yml turns its write actions off).
            log.warning("codec encode refused: this codec server only decodes")
            return JSONResponse(
                {"error": "this codec server only decodes: messages are sealed by the product's processes"},
                status_code=404,
            )
        if action != "decode":
            return JSONResponse({"error": "not found; POST …/decode"}, status_code=404)
        if auth.token_in(segments[:-1]):
            log.warning(
                "a static operator token appears in the codec endpoint path: paths never authenticate, and "
                "the UI settings and process lists show that token; remove it from the endpoint and rotate it"
            )
        try:
            operator = await auth.authenticate(request)
        except Refused as refused:
            log.warning("codec %s refused: %s", action, refused)
            return JSONResponse(
                {"error": "an operator credential is required"},
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="temporal-codec"'},
            )
        if not operator.may_read:
            log.warning("codec decode refused for %s (%s): no read role", operator.subject, operator.method)
            return JSONResponse(
                {"error": "your credential does not carry the role that may read orders"}, status_code=403
            )
        try:
            raw = await read_bounded(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return JSONResponse({"error": "body too large"}, status_code=413)
        message = Payloads()
        try:
            json_format.Parse(raw.decode("utf-8") or "{}", message, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError):
            return JSONResponse({"error": 'body must be proto3 JSON {"payloads": [...]}'}, status_code=400)
        try:
            decoded = await codec.decode(list(message.payloads))
            result = [mask_payload(p, mask_pii=not operator.show_pii) for p in decoded]
        except CodecKeyError as err:
            return JSONResponse({"error": redact_text(str(err))}, status_code=400)
        log.info(
            "codec decode of %d payload(s) for %s (%s), namespace %s, PII %s",
            len(result),
            operator.subject,
            operator.method,
            request.headers.get("x-namespace", "-")[:128],
            "shown" if operator.show_pii else "masked",
        )
        return JSONResponse(json_format.MessageToDict(Payloads(payloads=result)))

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/healthz", health, methods=["GET"]), Route("/{path:path}", codec_endpoint, methods=["POST"])],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-namespace"],
                allow_credentials=True,
                max_age=600,
            )
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m security.codec_server", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_log_redaction()
    settings, codec_settings = CodecServerSettings(), CodecSettings()
    try:
        auth = CodecAuth.from_settings(settings)
    except CodecAuthConfigError as err:
        log.error("codec server not started: %s", err)
        raise SystemExit(2) from None
    auth.announce()
    app = create_app(load_codec(codec_settings.keys_file), auth=auth, cors_origins=settings.cors_origins)
    tls: dict[str, Any] = {}
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        tls = {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
    elif not is_loopback_host(settings.host):
        log.warning(
            "the codec server serves plain HTTP on %s: credentials travel in clear, and the Temporal UI "
            "passes SSO access tokens to https:// endpoints only",
            settings.host,
        )
    scheme = "https" if tls else "http"
    log.info(
        "codec server on %s://%s:%d (authentication: %s; CORS: %s)",
        scheme,
        settings.host,
        settings.port,
        ", ".join(auth.methods),
        ", ".join(settings.cors_origins),
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, access_log=False, **tls)


if __name__ == "__main__":
    main()
