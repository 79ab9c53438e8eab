"""``python -m starter``: submit orders and follow them from a shell.

    python -m starter submit order.json [--wait]
    python -m starter status ISSUER_REQUEST_ID [--issuer-id ID]
    python -m starter list [--query 'ProductionStatus = "CARD_SHIPPED"']

Exit codes: 0 ok, 2 invalid input (every field problem printed), 3 refused (conflict),
4 not found, 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from settings import D1ClientSettings, TemporalSettings
from starter.api import CardOrders, OrderRefused
from starter.validation import InvalidOrder, validate_order
from workflows.messages import OrderView

EXIT_INVALID, EXIT_REFUSED, EXIT_NOT_FOUND = 2, 3, 4


def _print_invalid(source: str, err: InvalidOrder) -> None:
    print(f"{source}: the order is invalid, nothing was started ({len(err.errors)} problem(s)):", file=sys.stderr)
    for fe in err.errors:
        print(f"  - {fe.path}: {fe.reason}", file=sys.stderr)


def format_view(view: OrderView) -> str:
    st = view.state
    lines = [
        f"order      {view.workflow_id}",
        f"card       {view.ref.card_id}  (PAN {view.ref.masked_pan or '-'})",
        f"production {st.production_status or '-'}   due {st.due_date or '-'}   site {st.production_site or '-'}",
    ]
    if st.shipment:
        s = st.shipment
        lines.append(f"shipment   {s.status or '-'} via {s.carrier or '-'} #{s.trackingNumber or '-'}  {s.message or ''}")
    if st.outcome:
        lines.append(f"outcome    {st.outcome.value}" + (f" ({st.outcome_reason})" if st.outcome_reason else ""))
    for e in st.errors:
        lines.append(f"error      [{e.source}] {e.http_status or ''} {e.error_code or ''} {e.error or ''}".rstrip())
    lines.append("timeline")
    for t in st.timeline:
        ship = f" / {t.shipment_status}" if t.shipment_status else ""
        lines.append(f"  {t.d1_time:<26} {t.production_status or t.operation}{ship}  ({t.source})")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    issuer_id = args.issuer_id or D1ClientSettings().issuer_id
    if args.command == "submit":
        try:
            raw: Any = json.loads(Path(args.file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"{args.file}: cannot read a JSON order: {exc}", file=sys.stderr)
            return EXIT_INVALID
        try:
            order = validate_order(raw)
        except InvalidOrder as err:
            _print_invalid(args.file, err)
            return EXIT_INVALID
        orders = await CardOrders.connect(TemporalSettings())
        try:
            submitted = await orders.submit(order)
        except OrderRefused as err:
            print(f"refused: {err}", file=sys.stderr)
            return EXIT_REFUSED
        verb = "started" if submitted.created else "already exists"
        print(f"{submitted.workflow_id} {verb}")
        if args.wait:
            print(format_view(await orders.wait(order.issuerId, order.issuerRequestId)))
        return 0
    orders = await CardOrders.connect(TemporalSettings())
    if args.command == "status":
        try:
            view = await orders.status(issuer_id, args.issuer_request_id)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                print(f"no order {args.issuer_request_id} for issuer {issuer_id}", file=sys.stderr)
                return EXIT_NOT_FOUND
            raise
        print(format_view(view))
        return 0
    if args.command == "list":
        for o in await orders.list(args.query, limit=args.limit):
            print(f"{o.workflow_id:<60} {o.status:<10} {o.production_status or '-':<20} {o.outcome or ''}")
        return 0
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m starter", description="Order physical cards from D1.")
    parser.add_argument("--issuer-id", help="defaults to D1_ISSUER_ID")
    sub = parser.add_subparsers(dest="command", required=True)
    p_submit = sub.add_parser("submit", help="validate and start one order from a JSON file")
    p_submit.add_argument("file")
    p_submit.add_argument("--wait", action="store_true", help="wait until the order finishes")
    p_status = sub.add_parser("status", help="show one order's state and timeline")
    p_status.add_argument("issuer_request_id")
    p_list = sub.add_parser("list", help="list orders, optionally filtered by a visibility query")
    p_list.add_argument("--query", default=None)
    p_list.add_argument("--limit", type=int, default=100)
    args = parser.parse_args(argv)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
