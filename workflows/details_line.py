"""What an order shows operators in the Temporal UI (pure): the details line and the
search-attribute values that follow the state.

Search attributes hold identifiers and statuses only (they are not encrypted); the
details line is a payload (the codec seals it) and speaks plain words.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import search_attributes as sa
from contracts.card_order import OrderState

STATUS_WORDS = {
    "CARD_PROD_REQUESTED": "production requested",
    "DATA_PREPARED": "card data prepared",
    "CARD_PROD_READY": "ready for production",
    "CARD_PROD_ON_HOLD": "production on hold",
    "CARD_PROD_ONGOING": "in production",
    "CARD_PROD_DONE": "produced, waiting for the carrier",
    "CARD_SHIPPED": "shipped",
    "DATA_EXCEPTION": "stopped: D1 could not use the card data",
    "CARD_PROD_EXCEPTION": "stopped: production failed",
    "CARD_PROD_CANCELED": "production canceled",
    "CARD_RETURNED": "returned to the issuer",
}
SOURCE_WORDS = {"notification": "a D1 notification", "reconciliation": "a status check with D1"}


def in_words(status: str | None) -> str:
    return STATUS_WORDS.get(status or "", status or "unknown")


def due_date_value(value: str | None) -> datetime | None:
    """A D1 time (or date) as an aware datetime, UTC when D1 gave no zone; None if unreadable."""
    try:
        parsed = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def readable_time(value: str) -> str:
    moment = due_date_value(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else value


def attribute_values(st: OrderState) -> dict[str, object]:
    return {
        sa.PRODUCTION_STATUS.name: st.production_status,
        sa.SHIPMENT_STATUS.name: st.shipment.status if st.shipment else None,
        sa.TRACKING_NUMBER.name: st.shipment.trackingNumber if st.shipment else None,
        sa.ORDER_OUTCOME.name: st.outcome.value if st.outcome else None,
        sa.DUE_DATE.name: due_date_value(st.due_date),
    }


def details_line(st: OrderState) -> str:
    production = (
        f"{in_words(st.production_status)} ({st.production_status})"
        if st.production_status
        else "not yet acknowledged by D1"
    )
    parts = [f"**Production:** {production}"]
    if st.due_date:
        parts.append(f"**Due:** {st.due_date}")
    if st.shipment and st.shipment.status:
        ship = st.shipment
        parts.append(f"**Shipment:** {ship.status} ({ship.carrier or 'carrier'} {ship.trackingNumber or ''})")
    if st.outcome:
        parts.append(f"**Outcome:** {st.outcome.value}" + (f" ({st.outcome_reason})" if st.outcome_reason else ""))
    if st.timeline:
        last = st.timeline[-1]
        step = in_words(last.production_status) if last.production_status else last.operation
        if last.shipment_status:
            step += f", parcel {last.shipment_status}"
        source = SOURCE_WORDS.get(last.source, last.source)
        parts.append(
            f"**Last update:** {step}, from {source}, {readable_time(last.d1_time)} "
            f"({len(st.timeline)} update{'s' if len(st.timeline) != 1 else ''} so far)"
        )
    if st.unknown_statuses:
        parts.append(f"**Unknown statuses seen:** {', '.join(st.unknown_statuses)}")
    if st.changes:
        parts.append(f"**Pull & change:** {st.changes[-1].in_words()}")
    return "  \n".join(parts)
