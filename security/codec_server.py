"""``python -m security.codec_server``: the codec server the Temporal UI and CLI call to read
payloads that the AES-GCM codec (security/codec.py) keeps encrypted at rest.

Protocol (Temporal's remote codec): ``POST …/decode`` and ``POST …/encode`` with a
proto3-JSON ``{"payloads": [...]}`` body, answered in kind; only the last path segment
selects the action, so the endpoints can be mounted at any depth. CORS lets the UI's
origin call it from the browser with the ``authorization``, ``content-type`` and
``x-namespace`` headers.

Why it is more than a decoder:

* **it requires an operator credential** — a token from ``CODEC_SERVER_OPERATOR_TOKENS_FILE``
  presented as ``Authorization: Bearer <token>`` (``temporal … --codec-auth``; the UI's
  "pass access token" option) or as the path segment before ``/decode`` (an endpoint
  such as ``http://127.0.0.1:8234/<token>``, for the dev UI, which cannot send headers).
  Anything else gets 401;
* **decoded payloads come back with card data masked** (security/redaction.py): PAN as
  first 6 / last 4; expiry, CVV, PVV and tracks fully masked; names and addresses stay
  visible to operators unless ``CODEC_SERVER_MASK_PII`` is set. A payload that is not
  JSON is withheld rather than shown unmasked.

Nothing of a payload is ever logged; uvicorn's access log is off because the path may
carry the credential.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
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

from security.codec import CodecKeyError, load_codec
from security.redaction import install_log_redaction, redact_mapping, redact_text
from security.secret_files import write_secret
from settings import CodecServerSettings, CodecSettings

log = logging.getLogger("security.codec_server")

MAX_BODY_BYTES = 8 * 1024 * 1024
WITHHELD = "<payload withheld by the codec server: not JSON, cannot be masked>"
_JSON_ENCODINGS = (b"json/plain", b"json/protobuf")


class OperatorTokens:
    """Operator credentials: compared as SHA-256 digests in constant time."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        if not tokens:
            raise ValueError("the codec server needs at least one operator token")
        self._digests = [(name, hashlib.sha256(tok.encode("utf-8")).digest()) for name, tok in tokens.items()]

    @classmethod
    def from_file(cls, path: Path) -> OperatorTokens:
        """``name:token`` per line; blank lines and ``#`` comments ignored."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read operator tokens file {path}: {exc.strerror}") from None
        tokens: dict[str, str] = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, token = line.partition(":")
            if not sep or not name.strip() or len(token.strip()) < 16:
                raise ValueError(f"{path}:{number}: expected 'name:token' with a token of 16+ characters")
            tokens[name.strip()] = token.strip()
        return cls(tokens)

    def operator(self, token: str | None) -> str | None:
        """The operator's name for a valid token, else None (every entry is compared)."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for name, expected in self._digests:
            if hmac.compare_digest(digest, expected):
                found = name
        return found


def ensure_operator_token(path: Path, name: str = "local-operator") -> str:
    """Local stack: create the tokens file with one random operator token on first start."""
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(f"{name}:"):
                return line.partition(":")[2].strip()
    token = secrets.token_urlsafe(24)
    write_secret(path, f"{name}:{token}")
    return token


def _withheld(payload: Payload) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(WITHHELD).encode("utf-8"))


def mask_payload(payload: Payload, *, mask_pii: bool) -> Payload:
    """The decoded payload with card data masked (and PII, when asked)."""
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return payload
    if encoding not in _JSON_ENCODINGS:
        return _withheld(payload)
    try:
        value = json.loads(payload.data)
    except ValueError:
        return _withheld(payload)
    masked = redact_mapping(value, pii=mask_pii)
    return Payload(
        metadata=dict(payload.metadata),
        data=json.dumps(masked, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
    )


def _credential(request: Request, segments: Sequence[str]) -> str | None:
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return segments[-2] if len(segments) >= 2 else None


def create_app(
    codec: PayloadCodec,
    *,
    operators: OperatorTokens,
    cors_origins: Sequence[str],
    mask_pii: bool = False,
) -> Starlette:
    async def codec_endpoint(request: Request) -> Response:
        segments = [s for s in request.url.path.split("/") if s]
        action = segments[-1] if segments else ""
        if action not in ("decode", "encode"):
            return JSONResponse({"error": "not found; POST …/decode or …/encode"}, status_code=404)
        operator = operators.operator(_credential(request, segments))
        if operator is None:
            log.warning("codec %s refused: no valid operator credential", action)
            return JSONResponse(
                {"error": "an operator credential is required"},
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="temporal-codec"'},
            )
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, status_code=413)
        message = Payloads()
        try:
            json_format.Parse(raw.decode("utf-8") or "{}", message, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError):
            return JSONResponse({"error": 'body must be proto3 JSON {"payloads": [...]}'}, status_code=400)
        try:
            if action == "decode":
                decoded = await codec.decode(list(message.payloads))
                result = [mask_payload(p, mask_pii=mask_pii) for p in decoded]
            else:
                result = await codec.encode(list(message.payloads))
        except CodecKeyError as err:
            return JSONResponse({"error": redact_text(str(err))}, status_code=400)
        log.info(
            "codec %s of %d payload(s) for operator %s, namespace %s",
            action,
            len(result),
            operator,
            request.headers.get("x-namespace", "-"),
        )
        return JSONResponse(json_format.MessageToDict(Payloads(payloads=result)))

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            Route("/{path:path}", codec_endpoint, methods=["POST"]),
        ],
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
    app = create_app(
        load_codec(codec_settings.keys_file),
        operators=OperatorTokens.from_file(settings.operator_tokens_file),
        cors_origins=settings.cors_origins,
        mask_pii=settings.mask_pii,
    )
    tls: dict[str, Any] = {}
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        tls = {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
    elif settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the codec server serves plain HTTP on %s: operator tokens travel in clear", settings.host)
    scheme = "https" if tls else "http"
    log.info(
        "codec server on %s://%s:%d (CORS: %s)", scheme, settings.host, settings.port, ", ".join(settings.cors_origins)
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, access_log=False, **tls)


if __name__ == "__main__":
    main()
