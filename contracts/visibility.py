"""Building Temporal visibility queries from values that may come from outside.

Search-attribute values in a query are string literals: a value with a quote or a
backslash must be escaped, or a card id such as ``x" OR IssuerId != "`` would widen an
operator's query. Every query the product builds goes through :func:`quote`.
"""

from __future__ import annotations

from datetime import UTC, datetime

RUNNING = 'ExecutionStatus = "Running"'


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rfc3339(moment: datetime) -> str:
    """Visibility queries compare datetimes given as RFC 3339 strings (UTC here)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def equals(attribute: str, value: str) -> str:
    return f"{attribute} = {quote(value)}"


def all_of(*parts: str | None) -> str | None:
    present = [p for p in parts if p]
    if not present:
        return None
    return present[0] if len(present) == 1 else " AND ".join(f"({p})" for p in present)


def of_type(workflow_type: str, query: str | None = None) -> str:
    base = equals("WorkflowType", workflow_type)
    return f"{base} AND ({query})" if query else base
