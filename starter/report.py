"""The daily production report: one UTC day's orders requested, shipped, delivered,
returned, failed and shipped late, by program, production site, issuance and priority.

Read from Temporal visibility only (search attributes, contracts/search_attributes.py):
the totals are count queries; the breakdown lists the orders of each column and groups
them by their ``ServiceLabels``. A column counts an order on the day of its event:

* requested: the run started that day (an order that continued as new that day counts
  again: rare, a history of thousands of events);
* shipped, late: ``ShippedAt`` that day (late: ``ShippedLate``, after the end of D1's due date);
* delivered, returned, failed: the outcome, on the day the order closed (its close grace
  after D1's last word, minutes).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from temporalio.client import Client

from contracts import search_attributes as sa
from contracts.card_order import Outcome, orders_query
from contracts.visibility import all_of, equals, quote, rfc3339

COLUMNS = ("requested", "shipped", "delivered", "returned", "failed", "late")
GROUPS = ("program", "site", "issuance", "priority")
FAILED = (
    Outcome.REJECTED,
    Outcome.CRYPTO_REJECTED,
    Outcome.SUBMIT_FAILED,
    Outcome.DATA_EXCEPTION,
    Outcome.PRODUCTION_EXCEPTION,
    Outcome.FAILED,
)


def _between(attribute: str, day: date) -> str:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return f"{attribute} >= {quote(rfc3339(start))} AND {attribute} < {quote(rfc3339(start + timedelta(days=1)))}"


def _outcomes(*outcomes: Outcome) -> str:
    return f"OrderOutcome IN ({', '.join(quote(o.value) for o in outcomes)})"


def column_queries(day: date) -> dict[str, str]:
    """Each column's visibility query for ``day`` (UTC)."""
    return {
        "requested": _between("StartTime", day),
        "shipped": _between("ShippedAt", day),
        "delivered": f"{_outcomes(Outcome.DELIVERED)} AND {_between('CloseTime', day)}",
        "returned": f"{_outcomes(Outcome.RETURNED)} AND {_between('CloseTime', day)}",
        "failed": f"{_outcomes(*FAILED)} AND {_between('CloseTime', day)}",
        "late": f"ShippedLate = true AND {_between('ShippedAt', day)}",
    }


@dataclass
class DailyReport:
    day: date
    issuer_id: str | None
    totals: dict[str, int]
    # (program, site, issuance, priority) -> column -> count
    rows: dict[tuple[str, ...], Counter[str]]

    def as_dict(self) -> dict[str, object]:
        return {
            "date": self.day.isoformat(),
            "issuer_id": self.issuer_id,
            "totals": self.totals,
            "rows": [
                {**dict(zip(GROUPS, key, strict=True)), **{c: counts[c] for c in COLUMNS}}
                for key, counts in sorted(self.rows.items())
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["date", *GROUPS, *COLUMNS])
        for row in self.as_dict()["rows"]:  # type: ignore[attr-defined]
            writer.writerow([self.day.isoformat(), *(row[g] for g in GROUPS), *(row[c] for c in COLUMNS)])
        return out.getvalue()


def _group(labels: Sequence[str] | None) -> tuple[str, ...]:
    values = sa.label_values(labels)
    return tuple(values.get(name, sa.UNKNOWN_LABEL) for name in GROUPS)


async def daily_report(
    client: Client, day: date, issuer_id: str | None = None, query: str | None = None
) -> DailyReport:
    """The report of ``day`` (UTC) for one issuer (or all), narrowed by ``query`` if given."""
    scope = all_of(equals("IssuerId", issuer_id) if issuer_id else None, query)
    totals: dict[str, int] = {}
    rows: dict[tuple[str, ...], Counter[str]] = {}
    for column, where in column_queries(day).items():
        full = orders_query(all_of(scope, where))
        totals[column] = (await client.count_workflows(full)).count
        async for wf in client.list_workflows(full):
            rows.setdefault(_group(wf.typed_search_attributes.get(sa.SERVICE_LABELS)), Counter())[column] += 1
    return DailyReport(day, issuer_id, totals, rows)
