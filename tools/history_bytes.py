"""Bytes per history event type of a recorded order (``*.history.json``, written by
tests/histories/test_record.py), as a Markdown table: what each kind of event costs the
server's history store, before and after a change (docs/benchmarks.md, "History per order").

    python -m tools.history_bytes tests/histories/happy.history.json [--before OLD.history.json] [--per-event]

Two recordings of the same code can differ by a workflow task or an events marker (what
arrives while a local activity runs joins the open task), so ``--per-event`` adds the bytes
per event of each type: the comparison that holds across recordings.

Sizes are protobuf sizes (``HistoryEvent.ByteSize()``), as in bench/history.py: the payloads
as stored, sealed by the codec.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory


def sizes(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Events and bytes per event type (``EVENT_TYPE_`` left off)."""
    doc = json.loads(path.read_text())
    history = WorkflowHistory.from_json(doc["workflow_id"], doc["history"])
    events: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for event in history.events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        events[name] += 1
        size[name] += event.ByteSize()
    return events, size


def table(after: Path, before: Path | None = None, *, per_event: bool = False) -> str:
    events, size = sizes(after)
    old_events, old_size = sizes(before) if before is not None else (Counter[str](), Counter[str]())
    names = sorted(set(size) | set(old_size), key=lambda n: -max(size[n], old_size[n]))
    rows = ["| event type | events | bytes |", "|---|---:|---:|"]
    if before is not None:
        rows = [
            "| event type | events before | events after | bytes before | bytes after |",
            "|---|---:|---:|---:|---:|",
        ]
    if per_event:
        heads = ["bytes/event before", "bytes/event after"] if before is not None else ["bytes/event"]
        rows[0] += " " + " | ".join(heads) + " |"
        rows[1] += "---:|" * len(heads)
    for name in [*names, "total"]:
        if name == "total":
            counts = (old_events.total(), events.total(), old_size.total(), size.total())
            name = "**total per order**"
        else:
            counts = (old_events[name], events[name], old_size[name], size[name])
        shown = [f"{n:,}" for n in (counts if before is not None else counts[1::2])]
        if per_event:
            averages = [(counts[0], counts[2]), (counts[1], counts[3])]
            shown += [f"{b // n:,}" if n else "-" for n, b in (averages if before is not None else averages[1:])]
        rows.append(f"| {name} | " + " | ".join(shown) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("history", type=Path, help="a recorded history (*.history.json)")
    parser.add_argument("--before", type=Path, help="the same scenario recorded before a change")
    parser.add_argument("--per-event", action="store_true", help="add the bytes per event of each type")
    args = parser.parse_args()
    print(table(args.history, args.before, per_event=args.per_event))


if __name__ == "__main__":
    main()
