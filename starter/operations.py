"""Operator actions on card orders (docs/operations.md) through Temporal's public API: the
visibility queries, one order's timeline, re-driving reconciliation, the search attributes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.converter import decode_typed_search_attributes
from temporalio.service import RPCError

from contracts import card_order as api
from contracts import search_attributes as sa
from contracts.card_order import (
    ChangeStatus,
    OrderView,
    ReconcileRequest,
    card_query,
    rejected_since_query,
    stuck_query,
)
from contracts.visibility import RUNNING, all_of
from starter.edge import refuse_card_data_in
from starter.reads import found
from starter.start_many import bounded

__all__ = ["card_query", "rejected_since_query", "stuck_query"]  # re-exported for the CLI


def start_of_day() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def rejected_today_query() -> str:
    return rejected_since_query(start_of_day())


@dataclass(frozen=True)
class TimelineLine:
    at: datetime | None
    source: str  # "D1" (D1's own clock) or "order" (the workflow's milestones)
    text: str

    def render(self) -> str:
        when = self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if self.at else "-" * 23
        return f"{when}  {self.source:<5}  {self.text}"

    def as_json(self) -> dict[str, Any]:
        """``timeline -o json``: ``at`` in RFC 3339 UTC, or null."""
        return {**asdict(self), "at": self.at.astimezone(UTC).isoformat() if self.at else None}


_SIGNAL_WORDS = {
    api.NOTIFICATION_SIGNAL: "D1 notification received",
    api.RECONCILE_SIGNAL: "operator asked for a status check",
}
_CLOSE_WORDS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "order closed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "order FAILED (see the Temporal UI)",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "order timed out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "order canceled in Temporal",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "order TERMINATED by an operator",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "history rolled over (continue-as-new)",
}
_ACTIVITY_ENDS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "done",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "gave up",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed out",
}
_TRACKED_ATTRIBUTES = (sa.PRODUCTION_STATUS, sa.SHIPMENT_STATUS, sa.ORDER_OUTCOME)


def _d1_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _activity_summaries(client: Client, events: list[HistoryEvent]) -> dict[int, str]:
    """Activity summaries ("Submit order to D1") are encoded payloads: decode them in one go."""
    scheduled = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and e.user_metadata.HasField("summary")
    ]
    try:
        payloads = [e.user_metadata.summary for e in scheduled]
        values = await client.data_converter.decode(payloads, [str] * len(payloads))
    except Exception:  # a summary we cannot read is no reason to hide the timeline
        return {}
    return {e.event_id: str(v) for e, v in zip(scheduled, values, strict=True)}


def execution_milestones(events: list[HistoryEvent], summaries: dict[int, str]) -> list[TimelineLine]:
    """The workflow history in an operator's words (no payloads: ids and statuses only)."""
    lines: list[TimelineLine] = []
    activity_names: dict[int, str] = {}
    attempts: dict[int, int] = {}
    for e in events:
        et = e.event_type
        attrs: Any = getattr(e, e.WhichOneof("attributes") or "", None)
        text: str | None = _CLOSE_WORDS.get(et)
        if et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            text = "order started"
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activity_names[e.event_id] = summaries.get(e.event_id) or attrs.activity_type.name
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempts[attrs.scheduled_event_id] = attrs.attempt
        elif et in _ACTIVITY_ENDS:
            attempt = attempts.get(attrs.scheduled_event_id, 1)
            retried = f" (after {attempt} attempts)" if _ACTIVITY_ENDS[et] == "done" and attempt > 1 else ""
            text = f"{activity_names.get(attrs.scheduled_event_id, 'activity')}: {_ACTIVITY_ENDS[et]}{retried}"
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            text = _SIGNAL_WORDS.get(attrs.signal_name, f"signal {attrs.signal_name}")
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            text = f"operator request '{attrs.accepted_request.input.name}' accepted"
        elif et == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            values = decode_typed_search_attributes(attrs.search_attributes)
            changes = [f"{key.name} → {values.get(key)}" for key in _TRACKED_ATTRIBUTES if values.get(key) is not None]
            text = "now " + ", ".join(changes) if changes else None
        if text:
            lines.append(TimelineLine(e.event_time.ToDatetime(tzinfo=UTC), "order", text))
    return lines


def d1_steps(view: OrderView) -> list[TimelineLine]:
    out = []
    for t in view.state.timeline:
        what = t.production_status or t.operation
        if t.shipment_status:
            what += f" / parcel {t.shipment_status}"
        if t.error_code or t.reason:
            what += f" ({t.error_code or t.reason})"
        out.append(TimelineLine(_d1_time(t.d1_time), "D1", f"{what}  [{t.source}]"))
    return out


def change_steps(view: OrderView) -> list[TimelineLine]:
    """Each pull & change: who asked, who approved (four eyes), and a change that never reached D1."""
    out = []
    for c in view.state.changes:
        if c.change_id.startswith("d1-"):
            continue  # a change asked through another channel: only D1's answer is known
        asked = f"{c.type} {c.change_id} asked by {c.requested_by or 'unknown'}"
        if c.redirected_to:
            asked += f" (to {c.redirected_to})"
        if c.approval_expires_at:
            asked += f"; needs a second operator's approval before {c.approval_expires_at}"
        out.append(TimelineLine(_d1_time(c.requested_at), "order", asked))
        if c.approved_by and c.approved_at:
            out.append(TimelineLine(_d1_time(c.approved_at), "order", f"{c.change_id} approved by {c.approved_by}"))
        if c.status in (ChangeStatus.EXPIRED, ChangeStatus.REJECTED):
            text = f"{c.change_id} {c.status.value}, D1 not asked" + (f": {c.reason}" if c.reason else "")
            out.append(TimelineLine(_d1_time(c.decided_at or ""), "order", text))
    return out


async def order_timeline(client: Client, issuer_id: str, issuer_request_id: str) -> list[TimelineLine]:
    """D1's steps and the order's milestones, merged in time order (undated lines last)."""
    handle = client.get_workflow_handle(api.workflow_id(issuer_id, issuer_request_id))
    view: OrderView = await handle.query(api.VIEW_QUERY, result_type=OrderView)
    history = await handle.fetch_history()
    events = list(history.events)
    lines = (
        d1_steps(view) + change_steps(view) + execution_milestones(events, await _activity_summaries(client, events))
    )
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(lines, key=lambda line: line.at or far)


@dataclass
class RedriveReport:
    requested: list[str] = field(default_factory=list)
    not_running: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


async def redrive_one(client: Client, workflow_id: str, *, reason: str | None = None) -> bool:
    """Signal ``reconcile_now``; False when the order is closed or unknown. A ``reason`` holding
    card data is refused (InvalidOrder): it is kept in the order's log."""
    refuse_card_data_in(reason=reason)
    request = ReconcileRequest(reason=reason)  # who asks is the key that seals it (the operator's own)
    return await found(client.get_workflow_handle(workflow_id).signal(api.RECONCILE_SIGNAL, request))


async def redrive_matching(
    client: Client, query: str | None, *, concurrency: int = 20, progress: Callable[[int, int], None] | None = None
) -> RedriveReport:
    """Ask every running order matching ``query`` to reconcile now, ``concurrency`` at a time."""
    ids = [wf.id async for wf in client.list_workflows(api.orders_query(all_of(RUNNING, query)))]
    report = RedriveReport()
    done = 0
    if progress:
        progress(0, len(ids))

    async def one(workflow_id: str) -> None:
        nonlocal done
        try:
            (report.requested if await redrive_one(client, workflow_id) else report.not_running).append(workflow_id)
        except RPCError as err:
            report.failed[workflow_id] = err.status.name if err.status else str(err)
        done += 1
        if progress:
            progress(done, len(ids))

    await bounded(concurrency, (partial(one, w) for w in ids))
    return report


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the product's search attributes on a namespace (idempotent; the dev server gets
    them as flags); the names it added."""
    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in sa.ALL
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
