"""The D1-facing HTTP endpoints: token, card order (single and batch), production status,
pull & change and the tracking hub's Track Card.

Paths are matched by hand rather than by Starlette's router because D1's own documents
disagree on spelling: the emulator accepts them case-insensitively and with
``operations:production`` or ``operations/production``. The paths D1 does not document
(pull & change, the batch API, Track Card) come from the program's interface configuration
(``d1/assumptions.py``), so the emulator and the product agree on one template.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from d1.assumptions import D1Interface
from emulator.client_identity import check_banking_request, check_token_request
from emulator.error_codes import D1Error, ErrorCode
from emulator.faults import Injection
from emulator.orders import validate_path_ids
from emulator.state import EmulatorState
from emulator.tokens import parse_token_request

log = logging.getLogger(__name__)

BANKING_PREFIX = "/banking/v1"
TOKEN_RE = re.compile(r"^/authz/v1/oauth2/token/?$", re.IGNORECASE)
ORDER_RE = re.compile(
    r"^/banking/v1/issuers/(?P<issuer>[^/]+)/physicalcards/(?P<card>[^/]+)/operations[:/]production/?$", re.IGNORECASE
)
STATUS_RE = re.compile(
    r"^/banking/v1/issuers/(?P<issuer>[^/]+)/physicalcards/(?P<card>[^/]+)/productionstatus/?$", re.IGNORECASE
)
_PLACEHOLDERS = {"{issuerId}": "(?P<issuer>[^/]+)", "{cardId}": "(?P<card>[^/]+)"}


def template_regex(template: str) -> re.Pattern[str]:
    """A banking path template (``/issuers/{issuerId}/...``) as a route pattern with the same
    tolerance as the documented paths: any case, ``:`` or ``/`` before a custom method."""
    pattern = ""
    for piece in re.split(r"(\{issuerId\}|\{cardId\})", template):
        pattern += _PLACEHOLDERS.get(piece) or re.escape(piece).replace(":", "[:/]")
    return re.compile(f"^{re.escape(BANKING_PREFIX)}{pattern}/?$", re.IGNORECASE)


CORRELATION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CORRELATION_HEADER = "x-correlation-id"

Handler = Callable[[Request, EmulatorState, re.Match[str]], Awaitable[Response]]


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _correlation_id(request: Request) -> str | None:
    value = request.headers.get(CORRELATION_HEADER)
    return value if value and CORRELATION_ID_RE.match(value) else None


def _loggable_ids(issuer_id: str, card_id: str | None) -> tuple[str, ...]:
    """Path ids for log lines: only well-formed ones are written, anything else is client junk."""
    try:
        validate_path_ids(issuer_id, card_id)
    except D1Error:
        return ("<invalid>",) if card_id is None else ("<invalid>", "<invalid>")
    return (issuer_id,) if card_id is None else (issuer_id, card_id)


def error_response(error: D1Error, correlation_id: str | None = None) -> JSONResponse:
    headers = {CORRELATION_HEADER: correlation_id} if correlation_id else None
    return JSONResponse(error.body(), status_code=error.http_status, headers=headers)


def injected_response(injection: Injection) -> JSONResponse:
    assert injection.status is not None
    body = {"errorCode": injection.error_code or ErrorCode.SERVER_ERROR.value, "error": injection.error or "injected"}
    headers = {"Retry-After": str(injection.retry_after_s)} if injection.retry_after_s is not None else None
    return JSONResponse(body, status_code=injection.status, headers=headers)


def _cut_response(response: Response) -> Response:
    """Send half of the real body, then drop the connection (the client sees a broken read)."""
    body = bytes(response.body)

    async def half_then_abort() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise ConnectionAbortedError("injected: connection cut mid-response")

    headers = {"content-length": str(len(body)), "content-type": response.headers.get("content-type", "")}
    return StreamingResponse(half_then_abort(), status_code=response.status_code, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise D1Error(ErrorCode.PAYLOAD_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


async def token_endpoint(request: Request, state: EmulatorState, match: re.Match[str]) -> Response:
    state.stats.token_requests += 1
    try:
        body = await read_body(request, state.settings.max_body_bytes)
        _, assertion = parse_token_request(request.headers.get("content-type", ""), body)
        issuer_id = state.tokens.verify_assertion(assertion)
        check_token_request(request, state.settings, issuer_id)  # mTLS: certificate's issuer == iss
    except D1Error as exc:
        log.info("token refused: %s", exc)
        raise
    response = state.tokens.issue(issuer_id)
    state.stats.tokens_issued += 1
    log.info("token issued issuerId=%s", issuer_id)
    return JSONResponse(response, headers={"cache-control": "no-store", "pragma": "no-cache"})


async def _with_injection(
    request: Request,
    state: EmulatorState,
    where: tuple[str, str, str | None],
    injection: Injection | None,
    handle: Callable[[], Awaitable[Response]],
) -> Response:
    """Apply one fault-injection share around the real handling of a request. With
    ``afterProcessing`` the request is processed first, then delayed or held: D1 has taken it
    and is slow to answer. ``where``: (endpoint kind, issuerId, cardId or None) of a hold."""
    if injection is None:
        return await handle()
    if not injection.after_processing:
        await _wait(request, state, where, injection, processed=False)
    if injection.status is not None and not injection.after_processing:
        log.info("injected HTTP %d before processing", injection.status)
        return injected_response(injection)
    response = await handle()
    if injection.after_processing:
        await _wait(request, state, where, injection, processed=True)
    if injection.cut:
        log.info("injected a connection cut mid-response (real answer: %d)", response.status_code)
        return _cut_response(response)
    if injection.status is not None:
        log.info("injected HTTP %d after processing (real answer: %d)", injection.status, response.status_code)
        return injected_response(injection)
    return response


async def _wait(
    request: Request, state: EmulatorState, where: tuple[str, str, str | None], injection: Injection, *, processed: bool
) -> None:
    if injection.delay_s:
        await asyncio.sleep(injection.delay_s)
    if injection.hold:
        kind, issuer_id, card_id = where
        log.info("holding a %s request (processed: %s) until released", kind, processed)
        await state.holds.hold(request, kind, issuer_id, card_id, processed=processed)


def authorize_banking_call(request: Request, state: EmulatorState, issuer_id: str, card_id: str | None) -> None:
    """What every banking endpoint checks first, in D1's order: the bearer token (401),
    that it belongs to this mTLS certificate, well-formed path ids (400), and that the
    token's issuer is the one in the path (403). ``card_id`` is None on the batch API."""
    token_issuer = state.tokens.authenticate(request.headers.get("authorization"))
    check_banking_request(request, state.settings, token_issuer)
    validate_path_ids(issuer_id, card_id)
    if token_issuer != issuer_id:
        raise D1Error(ErrorCode.FORBIDDEN)


async def order_endpoint(request: Request, state: EmulatorState, match: re.Match[str]) -> Response:
    state.stats.order_requests += 1
    issuer_id, card_id = match["issuer"], match["card"]
    correlation_id = _correlation_id(request)

    async def handle() -> Response:
        try:
            authorize_banking_call(request, state, issuer_id, card_id)
            body = await read_body(request, state.settings.max_body_bytes)
            submission = state.orders.submit(issuer_id, card_id, body, correlation_id)
        except D1Error as exc:
            log.info("order refused issuerId=%s cardId=%s: %s", *_loggable_ids(issuer_id, card_id), exc)
            return error_response(exc, correlation_id)
        order = submission.order
        log.info(
            "order %s issuerId=%s cardId=%s issuerRequestId=%s operationId=%s",
            "accepted" if submission.created else "repeated (idempotent)",
            issuer_id,
            card_id,
            order.issuer_request_id,
            order.operation_id,
        )
        headers = {CORRELATION_HEADER: correlation_id} if correlation_id else None
        return JSONResponse({"operationId": order.operation_id}, status_code=202, headers=headers)

    return await _with_injection(
        request, state, ("order", issuer_id, card_id), state.faults.next_order_injection(), handle
    )


async def batch_endpoint(request: Request, state: EmulatorState, match: re.Match[str]) -> Response:
    """D1's "Order cards": one entry per card, each accepted or refused on its own (the shape is
    our choice, d1/assumptions.py); a malformed envelope is a 400 for the whole request."""
    state.stats.batch_requests += 1
    issuer_id = match["issuer"]
    correlation_id = _correlation_id(request)

    async def handle() -> Response:
        try:
            authorize_banking_call(request, state, issuer_id, None)
            body = await read_body(request, state.settings.batch_max_body_bytes)
            entries = await state.orders.submit_batch(issuer_id, body, correlation_id)
        except D1Error as exc:
            log.info("batch refused issuerId=%s: %s", *_loggable_ids(issuer_id, None), exc)
            return error_response(exc, correlation_id)
        accepted = sum(1 for e in entries if "operationId" in e)
        log.info("batch issuerId=%s: %d card(s), %d accepted or repeated", issuer_id, len(entries), accepted)
        headers = {CORRELATION_HEADER: correlation_id} if correlation_id else None
        return JSONResponse({"cards": entries}, status_code=202, headers=headers)

    where = ("batch", issuer_id, None)
    return await _with_injection(request, state, where, state.faults.next_injection("batch"), handle)


async def status_endpoint(request: Request, state: EmulatorState, match: re.Match[str]) -> Response:
    state.stats.status_requests += 1
    issuer_id, card_id = match["issuer"], match["card"]
    correlation_id = _correlation_id(request)

    async def handle() -> Response:
        try:
            authorize_banking_call(request, state, issuer_id, card_id)
            order = state.orders.latest(issuer_id, card_id)
            tracked = state.tracking.latest(issuer_id, card_id)
            if order is not None:
                operation = order.snapshot()
            elif tracked is not None and state.validator.interface.productionStatusAnswersTracking:
                operation = tracked.snapshot()  # G: D1 does not say (d1/assumptions.py)
            else:
                raise D1Error(ErrorCode.NOT_FOUND, "cardId", reason="no card order is known for this cardId")
        except D1Error as exc:
            return error_response(exc, correlation_id)
        headers = {CORRELATION_HEADER: correlation_id} if correlation_id else None
        return JSONResponse({"operations": [operation]}, headers=headers)

    where = ("status", issuer_id, card_id)
    return await _with_injection(request, state, where, state.faults.next_status_injection(), handle)


async def pull_and_change_endpoint(request: Request, state: EmulatorState, match: re.Match[str]) -> Response:
    issuer_id, card_id = match["issuer"], match["card"]
    correlation_id = _correlation_id(request)
    try:
        authorize_banking_call(request, state, issuer_id, card_id)
        body = await read_body(request, state.settings.max_body_bytes)
        operation_id, _ = state.pull_and_change.request(issuer_id, card_id, body, correlation_id)
    except D1Error as exc:
        log.info("pull and change refused issuerId=%s cardId=%s: %s", *_loggable_ids(issuer_id, card_id), exc)
        return error_response(exc, correlation_id)
    headers = {CORRELATION_HEADER: correlation_id} if correlation_id else None
    return JSONResponse({"operationId": operation_id}, status_code=202, headers=headers)


async def track_endpoint(request: Request, state: EmulatorState, match: re.Match[str]) -> Response:
    issuer_id, card_id = match["issuer"], match["card"]
    correlation_id = _correlation_id(request)

    async def handle() -> Response:
        try:
            authorize_banking_call(request, state, issuer_id, card_id)
            body = await read_body(request, state.settings.max_body_bytes)
            tracking, created = state.tracking.request(issuer_id, card_id, body, correlation_id)
        except D1Error as exc:
            log.info("track card refused issuerId=%s cardId=%s: %s", *_loggable_ids(issuer_id, card_id), exc)
            return error_response(exc, correlation_id)
        if not created:
            log.info("track card repeated (idempotent) operationId=%s", tracking.operation_id)
        headers = {CORRELATION_HEADER: correlation_id} if correlation_id else None
        return JSONResponse({"operationId": tracking.operation_id}, status_code=202, headers=headers)

    where = ("track", issuer_id, card_id)
    return await _with_injection(request, state, where, state.faults.next_injection("track"), handle)


Route = tuple[re.Pattern[str], str, Handler]


def build_routes(iface: D1Interface) -> tuple[Route, ...]:
    """The D1 routes, the guessed paths taken from the program's interface configuration.
    The batch path has no cardId, so it cannot shadow a card-scoped path."""
    return (
        (TOKEN_RE, "POST", token_endpoint),
        (template_regex(iface.batchOrderPath), "POST", batch_endpoint),
        (ORDER_RE, "POST", order_endpoint),
        (STATUS_RE, "GET", status_endpoint),
        (template_regex(iface.pullAndChangePath), "POST", pull_and_change_endpoint),
        (template_regex(iface.trackCardPath), "POST", track_endpoint),
    )


async def dispatch(request: Request) -> Response:
    """Catch-all route: D1 paths by pattern, JSON 404/405 for everything else."""
    path: str = request.scope["path"]
    routes: tuple[Route, ...] = request.app.state.d1_routes
    for pattern, method, handler in routes:
        match = pattern.match(path)
        if match is None:
            continue
        if request.method != method:
            return error_response(D1Error(ErrorCode.METHOD_NOT_ALLOWED))
        try:
            return await handler(request, _state(request), match)
        except D1Error as exc:
            return error_response(exc, _correlation_id(request))
    return error_response(D1Error(ErrorCode.NOT_FOUND))
