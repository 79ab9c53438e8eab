"""``/v1/issuers/{issuerId}/card-order-batches``: a file of orders (a JSON array or JSON lines),
each validated and encrypted by the edge, started through D1's batch API or one by one
(starter/start_many.py). The service keeps no state: a batch's id names its orders, and reading
it asks Temporal how each one stands."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from temporalio.client import WorkflowExecutionStatus

from contracts import card_order as api
from contracts import search_attributes as sa
from contracts.visibility import equals, quote
from issuer_api.auth import READ, WRITE, Caller, requires
from issuer_api.context import ApiContext, context
from issuer_api.models import Batch, BatchCardResult, Links
from issuer_api.orders import AUTH, as_order, links, prepare
from issuer_api.problems import ProblemError, responses
from security.bounded_body import BodyTooLarge, read_bounded
from starter.d1_batches import BatchLimits
from starter.edge import PreparedOrder
from starter.start_many import Started

router = APIRouter(prefix="/v1/issuers/{issuerId}/card-order-batches", tags=["card order batches"])
Ctx = Annotated[ApiContext, Depends(context)]
# An id longer than this (a batch of hundreds of long issuerRequestIds) cannot be read back: the
# URL would outgrow what HTTP servers and proxies accept (docs/issuer-api.md, "Batches").
MAX_BATCH_ID = 8192
BatchId = Annotated[
    str,
    PathParam(description="The id a batch was answered with", max_length=MAX_BATCH_ID, pattern=r"^b1\.[A-Za-z0-9_-]+$"),
]


def parse_lines(raw: bytes, content_type: str) -> list[Any]:
    """A JSON array (``application/json``), or JSON lines (one order per line, blank lines skipped)."""
    text = raw.decode("utf-8", errors="strict")
    if content_type.split(";", 1)[0].strip().lower() == "application/json" or text.lstrip().startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError
        return parsed
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def batch_id(entries: list[tuple[str, str | None]]) -> str:
    """The ordered (result, issuerRequestId) pairs, compressed: what GET needs, nothing more."""
    packed = zlib.compress(json.dumps(entries, separators=(",", ":")).encode(), 9)
    return "b1." + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def read_batch_id(value: str) -> list[tuple[str, str | None]]:
    try:
        if not value.startswith("b1."):
            raise ValueError
        data = value[3:]
        entries = json.loads(zlib.decompress(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))))
        return [(str(kind), None if rid is None else str(rid)) for kind, rid in entries]
    except (ValueError, TypeError, binascii.Error, zlib.error):
        raise ProblemError(404, "not-found", "no such batch") from None


def _result(index: int, started: Started, request_id: str, issuer_id: str) -> BatchCardResult:
    if started.submitted is not None:
        kind: Literal["created", "existing"] = "created" if started.submitted.created else "existing"
        return BatchCardResult(index=index, issuerRequestId=request_id, result=kind, links=links(issuer_id, request_id))
    if started.refused is not None:
        return BatchCardResult(index=index, issuerRequestId=request_id, result="refused", detail=started.refused)
    return BatchCardResult(index=index, issuerRequestId=request_id, result="failed", detail=started.failed)


@router.post(
    "",
    summary="Order many cards at once",
    description=(
        "A JSON array of orders, or JSON lines (`application/x-ndjson`). Each order is validated on its own: "
        "an invalid one is reported with its problems and the others go on. `d1Batch=true` sends the valid "
        "orders through D1's batch API."
    ),
    status_code=202,
    response_model=Batch,
    responses=responses(400, *AUTH, 413, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                # Each order is checked on its own (an invalid one is reported among the results).
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def create_batch(
    request: Request,
    response: Response,
    issuerId: str,
    ctx: Ctx,
    caller: Annotated[Caller, Depends(requires(WRITE))],
    d1Batch: Annotated[bool, Query(description="Send through D1's batch API")] = False,
) -> Batch:
    settings = ctx.settings
    try:
        raw = await read_bounded(request, settings.max_batch_bytes)
    except BodyTooLarge:
        raise ProblemError(413, "too-large", f"the body is larger than {settings.max_batch_bytes} bytes") from None
    try:
        lines = parse_lines(raw, request.headers.get("content-type", ""))
    except (ValueError, RecursionError):
        raise ProblemError(400, "invalid-json", "the body is neither a JSON array nor JSON lines (UTF-8)") from None
    if not lines:
        raise ProblemError(400, "empty-batch", "the batch holds no order")
    if not all(isinstance(line, dict) for line in lines):
        raise ProblemError(400, "invalid-batch", "every order of a batch must be a JSON object")
    if len(lines) > settings.max_batch_orders:
        raise ProblemError(413, "too-many-orders", f"at most {settings.max_batch_orders} orders per batch")
    results: dict[int, BatchCardResult] = {}
    prepared: list[tuple[int, PreparedOrder]] = []
    for index, line in enumerate(lines):
        request_id = line.get("issuerRequestId") if isinstance(line, dict) else None
        request_id = request_id if isinstance(request_id, str) and len(request_id) <= 64 else None
        try:
            prepared.append((index, prepare(ctx, as_order(line, issuerId), caller)))
        except ProblemError as err:
            errors = [{"path": e.path, "detail": e.reason} for e in err.errors]
            results[index] = BatchCardResult(
                index=index, issuerRequestId=request_id, result="invalid", detail=err.detail, errors=errors
            )
    d1_batches: list[str] = []
    if prepared:
        limits = BatchLimits.from_settings(ctx.orders.edge.program.interface.batchMaxCards) if d1Batch else False
        async with ctx.gate.slot():
            started = await ctx.orders.start_many([p for _, p in prepared], d1_batches=limits)
        for (index, p), outcome in zip(prepared, started, strict=True):
            results[index] = _result(index, outcome, p.ref.issuer_request_id, issuerId)
            if outcome.d1_batch and outcome.d1_batch not in d1_batches:
                d1_batches.append(outcome.d1_batch)
    ordered = [results[i] for i in range(len(lines))]
    identifier = batch_id([(r.result, r.issuerRequestId) for r in ordered])
    path = f"/v1/issuers/{issuerId}/card-order-batches/{identifier}"
    response.headers["location"] = path
    rejected = sum(r.result in ("invalid", "refused", "failed") for r in ordered)
    return Batch(
        id=identifier,
        issuerId=issuerId,
        cards=len(ordered),
        accepted=len(ordered) - rejected,
        rejected=rejected,
        d1Batches=d1_batches,
        results=ordered,
        links=Links(self=path),
    )


@router.get(
    "/{batchId}",
    summary="A batch, with how each of its orders stands",
    response_model=Batch,
    responses=responses(400, *AUTH, 404, 429, 503),
)
async def get_batch(issuerId: str, batchId: BatchId, ctx: Ctx, _: Annotated[Caller, Depends(requires(READ))]) -> Batch:
    entries = read_batch_id(batchId)
    wanted = sorted({rid for kind, rid in entries if rid and kind in ("created", "existing")})
    found: dict[str, tuple[str, str | None]] = {}
    async with ctx.gate.slot():
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            ids = ", ".join(quote(api.workflow_id(issuerId, rid)) for rid in chunk)
            query = api.orders_query(f"{equals(sa.ISSUER_ID.name, issuerId)} AND WorkflowId IN ({ids})")
            async for wf in ctx.orders.client.list_workflows(query, page_size=100):
                rid = wf.typed_search_attributes.get(sa.ISSUER_REQUEST_ID)
                if rid is not None:
                    status = (wf.status or WorkflowExecutionStatus.RUNNING).name.title().replace("_", "")
                    found[rid] = (status, wf.typed_search_attributes.get(sa.ORDER_OUTCOME))
    results = []
    for index, (kind, rid) in enumerate(entries):
        if rid is not None and rid in found:
            status, outcome = found[rid]
            results.append(
                BatchCardResult(
                    index=index,
                    issuerRequestId=rid,
                    result=kind,  # type: ignore[arg-type]
                    status=status,
                    outcome=outcome,
                    links=links(issuerId, rid),
                )
            )
        else:
            pending = kind in ("created", "existing")  # visibility may lag behind a start
            results.append(
                BatchCardResult(index=index, issuerRequestId=rid, result="pending" if pending else kind)  # type: ignore[arg-type]
            )
    rejected = sum(r.result in ("invalid", "refused", "failed") for r in results)
    return Batch(
        id=batchId,
        issuerId=issuerId,
        cards=len(results),
        accepted=len(results) - rejected,
        rejected=rejected,
        results=results,
        links=Links(self=f"/v1/issuers/{issuerId}/card-order-batches/{batchId}"),
    )
