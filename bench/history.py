"""What an order costs the engine, read from its workflow history after the run.

History is the ground truth for both the product and the baseline: events and bytes per
order, the mix of event types, and the time from start to the workflow task that
processed the CARD_SHIPPED update (the moment the workflow *knew* the card shipped), read
from server timestamps so that no client-side polling disturbs the measurement.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from security.codec import AesGcmCodec

SHIPPED = "CARD_SHIPPED"


@dataclass
class OrderHistory:
    events: int
    bytes: int
    types: Counter[str]
    start_to_shipped_s: float | None
    start_to_close_s: float | None
    # Workflow tasks that processed at least one signal, and the most signals one of them processed.
    signal_tasks: int = 0
    max_signals_per_task: int = 0


@dataclass
class HistorySummary:
    orders: int
    events_per_order: float
    bytes_per_order: float
    # The shape check: ~1.0 signal per signal-carrying task means each notification was its own task.
    workflow_tasks_per_order: float = 0.0
    signals_per_order: float = 0.0
    signals_per_signal_task: float = 0.0
    orders_with_batched_signals: int = 0
    event_types_per_order: dict[str, float] = field(default_factory=dict)
    start_to_shipped_s: list[float] = field(default_factory=list)
    start_to_close_s: list[float] = field(default_factory=list)


def _ts(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def _signal_status(payload: Payload, codec: AesGcmCodec | None) -> str | None:
    """``details.status`` of a notification signal (decrypting it when the codec sealed it)."""
    if codec is not None:
        payload = codec.decode_one(payload)
    try:
        body = json.loads(payload.data)
    except ValueError:
        return None
    details = body.get("details") if isinstance(body, dict) else None
    return details.get("status") if isinstance(details, dict) else None


def analyse(events: list[HistoryEvent], codec: AesGcmCodec | None) -> OrderHistory:
    types: Counter[str] = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events)
    start = _ts(events[0])
    close = None
    if events[-1].event_type in (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    ):
        close = _ts(events[-1]) - start
    shipped = None
    seen_shipped_signal = False
    # A signal is processed by the first workflow task that *starts* after it was recorded.
    pending = signal_tasks = most = 0
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            pending += 1
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and pending:
            signal_tasks += 1
            most = max(most, pending)
            pending = 0
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and not seen_shipped_signal:
            payloads = e.workflow_execution_signaled_event_attributes.input.payloads
            if payloads and _signal_status(payloads[0], codec) == SHIPPED:
                seen_shipped_signal = True
        elif seen_shipped_signal and e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            shipped = _ts(e) - start
            break
    return OrderHistory(
        events=len(events),
        bytes=sum(e.ByteSize() for e in events),
        types=types,
        start_to_shipped_s=shipped,
        start_to_close_s=close,
        signal_tasks=signal_tasks,
        max_signals_per_task=most,
    )


async def summarise(
    client: Client, workflow_ids: list[str], codec: AesGcmCodec | None, *, concurrency: int = 16
) -> HistorySummary:
    sem = asyncio.Semaphore(concurrency)

    async def one(wid: str) -> OrderHistory:
        async with sem:
            hist = await client.get_workflow_handle(wid).fetch_history()
        return analyse(list(hist.events), codec)

    results = await asyncio.gather(*(one(w) for w in workflow_ids))
    n = max(1, len(results))
    types: Counter[str] = Counter()
    for r in results:
        types.update(r.types)
    signals = types["WORKFLOW_EXECUTION_SIGNALED"]
    signal_tasks = sum(r.signal_tasks for r in results)
    return HistorySummary(
        orders=len(results),
        events_per_order=sum(r.events for r in results) / n,
        bytes_per_order=sum(r.bytes for r in results) / n,
        workflow_tasks_per_order=types["WORKFLOW_TASK_COMPLETED"] / n,
        signals_per_order=signals / n,
        signals_per_signal_task=signals / signal_tasks if signal_tasks else 0.0,
        orders_with_batched_signals=sum(1 for r in results if r.max_signals_per_task > 1),
        event_types_per_order={k: v / n for k, v in types.most_common()},
        start_to_shipped_s=[r.start_to_shipped_s for r in results if r.start_to_shipped_s is not None],
        start_to_close_s=[r.start_to_close_s for r in results if r.start_to_close_s is not None],
    )
