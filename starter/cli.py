"""``python -m starter``: submit orders and follow them from a shell; output formats and exit
codes in docs/operations.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from contracts import card_order as api
from contracts.card_tracking import TRACKING_TYPES, TrackingResult
from contracts.visibility import RUNNING, all_of
from d1.validation import InvalidOrder
from observability.process import configure_process
from security.keys import KeyFileError
from security.redaction import install_log_redaction
from security.sealing import OPERATOR
from settings import D1ClientSettings, TemporalSettings
from starter import operations as ops
from starter.api import CardOrders, ChangeRejected, OrderRefused, timing_from_settings
from starter.d1_batches import BatchLimits
from starter.edge import ClearTrackDataRefused, OrderEdge, refuse_card_data_in
from starter.order_file import Progress, detect_format, start_lines, validate_file
from starter.output import (
    BulkProgress,
    change_text,
    format_view,
    invalid_text,
    json_text,
    print_orders_table,
    tracking_text,
)
from starter.report import daily_report
from starter.same_order import ForeignStart
from temporal_client import connect

EXIT_INVALID, EXIT_REFUSED, EXIT_NOT_FOUND, EXIT_FOREIGN = 2, 3, 4, 5


Command = Callable[[argparse.Namespace, str], Awaitable[int]]


class Exit(Exception):
    """Ends a command: the message on stderr, ``code`` the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _run(args: argparse.Namespace) -> int:
    command: Command = args.func
    issuer_id = args.issuer_id or D1ClientSettings().issuer_id
    try:
        _refuse_card_data_in_arguments(args, issuer_id)
        return await command(args, issuer_id)
    except Exit as err:
        print(err, file=sys.stderr)
        return err.code


def _refuse_card_data_in_arguments(args: argparse.Namespace, issuer_id: str) -> None:
    """Ids and notes given on the command line go into workflow ids, queries and order views:
    one holding card data ends the command before anything is contacted, naming the argument only."""
    try:
        refuse_card_data_in(
            issuerId=issuer_id,
            issuerRequestId=getattr(args, "issuer_request_id", None),
            cardId=getattr(args, "card_id", None) or getattr(args, "card", None),
            note=getattr(args, "note", None),
            reason=getattr(args, "reason", None),
        )
    except InvalidOrder as err:
        problems = "; ".join(f"{fe.path}: {fe.reason}" for fe in err.errors)
        raise Exit(EXIT_INVALID, f"refused, nothing was sent: {problems}") from None


def _order_lookup(command: Command) -> Command:
    """A command about one order: an order Temporal does not know is exit code 4, not a traceback."""

    @wraps(command)
    async def run(args: argparse.Namespace, issuer_id: str) -> int:
        try:
            return await command(args, issuer_id)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            rid = getattr(args, "issuer_request_id", "")
            raise Exit(EXIT_NOT_FOUND, f"no order {rid} for issuer {issuer_id}") from None

    return run


async def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(await asyncio.to_thread(Path(path).read_text, encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Exit(EXIT_INVALID, f"{path}: cannot read {what}: {exc}") from None


async def cmd_submit(args: argparse.Namespace, issuer_id: str) -> int:
    raw = await _read_json(args.file, "a JSON order")
    # Validated and encrypted for D1 before Temporal is contacted: invalid input is
    # reported even when Temporal is down, and only the JWE leaves this process.
    edge = OrderEdge.from_settings()
    try:
        prepared = edge.prepare(raw, timing=timing_from_settings(), unknown_fields=args.unknown_fields)
    except InvalidOrder as err:
        raise Exit(EXIT_INVALID, invalid_text(args.file, err)) from None
    except (KeyFileError, ClearTrackDataRefused) as err:  # D1's key or the program unusable: nothing was sent
        raise Exit(1, f"error: {err}") from None
    for fw in prepared.warnings:
        print(f"warning: {fw.path}: {fw.reason}", file=sys.stderr)
    orders = await CardOrders.connect(TemporalSettings(), edge=edge)
    try:
        submitted = await orders.submit_prepared(prepared)
    except OrderRefused as err:
        raise Exit(EXIT_REFUSED, f"refused: {err}") from None
    except ForeignStart as err:  # never "already exists": someone else holds the order's id
        raise Exit(EXIT_FOREIGN, f"error: {err}") from None
    print(f"{submitted.workflow_id} {'started' if submitted.created else 'already exists'}")
    if args.wait:
        print(format_view(await orders.wait(prepared.ref.issuer_id, prepared.ref.issuer_request_id)))
    return 0


async def cmd_submit_batch(args: argparse.Namespace, issuer_id: str) -> int:
    """Validate the file, start its valid lines, print the summary (on Ctrl-C too: a re-run finishes)."""
    path = Path(args.file)
    try:
        edge, fmt = OrderEdge.from_settings(), detect_format(path, args.format)
        lines, report = await asyncio.to_thread(
            validate_file, path, fmt=fmt, default_issuer_id=issuer_id, edge=edge, unknown_fields=args.unknown_fields
        )
    except (OSError, ValueError) as exc:
        raise Exit(EXIT_INVALID, f"{path}: cannot read the batch file: {exc}") from None
    report.dry_run = args.dry_run
    if report.invalid:
        print(f"{path}: {len(report.invalid)} invalid line(s), nothing will be started for them", file=sys.stderr)
    if not args.dry_run and lines:
        program_max = edge.program.interface.batchMaxCards
        limits = BatchLimits.from_settings(program_max, batch_size=args.batch_size) if args.d1_batch else None
        orders = await CardOrders.connect(TemporalSettings(), edge=edge)
        try:
            await start_lines(
                orders, lines, report, d1_batches=limits, concurrency=args.concurrency, progress=Progress(len(lines))
            )
        except (asyncio.CancelledError, KeyboardInterrupt):
            report.interrupted = True
            print(report.summary())
            raise
    print(report.summary())
    return report.exit_code


async def cmd_track(args: argparse.Namespace, issuer_id: str) -> int:
    shipment = {k: v for k, v in (("carrier", args.carrier), ("trackingNumber", args.tracking_number)) if v}
    given = {"shipment": shipment, "productionSite": args.production_site, "reason": args.reason}
    details: dict[str, Any] = {k: v for k, v in given.items() if v}
    orders = await CardOrders.connect(TemporalSettings())
    try:
        submitted = await orders.track(issuer_id, args.card_id, args.type, details=details)
    except InvalidOrder as err:
        raise Exit(EXIT_INVALID, invalid_text(f"track {args.card_id}", err)) from None
    print(f"{submitted.workflow_id} {'started' if submitted.created else 'already running'}")
    if args.wait:
        # The run returns how it ended (TrackingResult); the view is read by query, which an
        # ended tracking still answers.
        await orders.client.get_workflow_handle(submitted.workflow_id, result_type=TrackingResult).result()
        view = await orders.tracking_status(issuer_id, args.card_id, args.type)
        print(json.dumps(view.model_dump(mode="json"), indent=2) if args.output == "json" else tracking_text(view))
    return 0


@_order_lookup
async def cmd_status(args: argparse.Namespace, issuer_id: str) -> int:
    orders = await CardOrders.connect(TemporalSettings(), sealer=None)
    view = await orders.status(issuer_id, args.issuer_request_id)
    print(json_text(view.model_dump(mode="json")) if args.output == "json" else format_view(view))
    return 0


async def cmd_list(args: argparse.Namespace, issuer_id: str) -> int:
    orders = await CardOrders.connect(TemporalSettings(), sealer=None)
    query = list_query(args, issuer_id)
    if args.show_query:
        print(f"query: {api.orders_query(query)}", file=sys.stderr)
    found = await orders.list(query, limit=args.limit)
    if args.output == "json":
        print(json_text([asdict(o) for o in found]))
    else:
        print_orders_table(found)
    return 0


@_order_lookup
async def cmd_timeline(args: argparse.Namespace, issuer_id: str) -> int:
    client = await connect(TemporalSettings())
    lines = await ops.order_timeline(client, issuer_id, args.issuer_request_id)
    as_json = args.output == "json"
    print(json_text([line.as_json() for line in lines]) if as_json else "\n".join(map(ops.TimelineLine.render, lines)))
    return 0


@_order_lookup
async def cmd_reconcile(args: argparse.Namespace, issuer_id: str) -> int:
    query = list_query(args, issuer_id)
    if not args.issuer_request_id and query is None and not args.all_running:
        raise Exit(EXIT_INVALID, "say which orders: ISSUER_REQUEST_ID, --stuck, --query Q or --all-running")
    client = await connect(TemporalSettings(), sealer=OPERATOR)
    if args.issuer_request_id:
        wid = api.workflow_id(issuer_id, args.issuer_request_id)
        if not await ops.redrive_one(client, wid):
            raise Exit(EXIT_NOT_FOUND, f"order {args.issuer_request_id} is not running")
        print(f"{wid}: reconciliation requested")
        return 0
    with BulkProgress("reconcile") as progress:
        report = await ops.redrive_matching(client, query, concurrency=args.concurrency, progress=progress.update)
    ended, failed = len(report.not_running), len(report.failed)
    print(f"reconciliation requested for {len(report.requested)} order(s); {ended} had ended; {failed} failed")
    for wid, why in report.failed.items():
        print(f"  failed: {wid}: {why}", file=sys.stderr)
    return 0 if not report.failed else 1


@_order_lookup
async def cmd_change(args: argparse.Namespace, issuer_id: str) -> int:
    rid, source = args.issuer_request_id, getattr(args, "address", None)
    address = await _read_json(source, "a JSON address") if source else None
    if args.command == "redirect" and address is None:
        raise Exit(EXIT_INVALID, "redirect needs --address FILE (the new deliveryAddress as JSON)")
    orders = await CardOrders.connect(TemporalSettings(), sealer=OPERATOR)
    try:
        if args.command == "cancel":
            record = await orders.cancel(issuer_id, rid, note=args.note)
        elif address is None:
            record = await orders.accelerate(issuer_id, rid, note=args.note)
        elif args.command == "accelerate":
            record = await orders.accelerate_and_redirect(issuer_id, rid, address, note=args.note)
        else:
            record = await orders.redirect(issuer_id, rid, address, note=args.note)
    except InvalidOrder as err:
        # Never the request id here: a refused id may be card data.
        raise Exit(EXIT_INVALID, invalid_text(source or args.command, err)) from None
    except ChangeRejected as err:
        raise Exit(EXIT_REFUSED, f"{args.command} refused: {err.reason}") from None
    print(change_text(args.command, record, rid))
    return 0


@_order_lookup
async def cmd_decide(args: argparse.Namespace, issuer_id: str) -> int:
    """``approve`` / ``reject``: a change waiting for a second operator (four eyes)."""
    rid, change_id = args.issuer_request_id, args.change_id
    # Sealed with this operator's own key: the workflow reads who approves from it.
    orders = await CardOrders.connect(TemporalSettings(), sealer=OPERATOR)
    decide = orders.approve_change if args.command == "approve" else orders.reject_change
    try:
        record = await decide(issuer_id, rid, change_id, note=args.note)
    except ChangeRejected as err:
        raise Exit(EXIT_REFUSED, f"{args.command} {change_id} refused: {err.reason}") from None
    print(change_text(args.command, record, rid))
    return 0


def list_query(args: argparse.Namespace, issuer_id: str) -> str | None:
    """The ``list``/``reconcile`` shortcuts as one visibility query (docs/operations.md, "Finding orders")."""
    return all_of(
        args.query,
        ops.stuck_query() if args.stuck else None,
        ops.rejected_today_query() if getattr(args, "rejected_today", False) else None,
        ops.card_query(args.card, issuer_id) if getattr(args, "card", None) else None,
        RUNNING if getattr(args, "running", False) else None,
    )


async def cmd_report(args: argparse.Namespace, issuer_id: str) -> int:
    """The daily production report (starter/report.py), CSV or JSON on stdout."""
    report = await daily_report(await connect(TemporalSettings()), args.date, issuer_id, args.query)
    print(report.to_json() if args.format == "json" else report.to_csv(), end="" if args.format == "csv" else "\n")
    return 0


async def cmd_register_search_attributes(args: argparse.Namespace, issuer_id: str) -> int:
    """Deployment set-up: wait for the Temporal server, then register the search attributes."""
    settings = TemporalSettings()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait
    while True:
        try:
            client = await connect(settings, keyless=True)  # no payload: it holds no codec key
            added = await ops.register_search_attributes(client, settings.namespace)
            break
        except (RPCError, RuntimeError) as err:
            if loop.time() > deadline:
                raise Exit(1, f"Temporal at {settings.address} not ready: {err}") from None
            await asyncio.sleep(2)
    print(f"namespace {settings.namespace}: " + (f"registered {', '.join(added)}" if added else "all present"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m starter", description="Order physical cards from D1.")
    parser.add_argument("--issuer-id", help="defaults to D1_ISSUER_ID")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Command, text: str, first: str | None = None, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=func)
        if first:
            p.add_argument(first, **kw)
        return p

    def output(p: argparse.ArgumentParser) -> None:
        help = "text for people (default), json for scripts"
        p.add_argument("-o", "--output", choices=("text", "json"), default="text", help=help)

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--query", default=None, help="a Temporal visibility query (search attributes)")
        p.add_argument("--stuck", action="store_true", help="running, CARD_PROD_ONGOING and past D1's due date")
        p.add_argument("--card", metavar="CARD_ID", help="every order of one card")

    def allow_unknown_fields(p: argparse.ArgumentParser) -> None:
        help = "warn about unknown members and pass them through"
        p.add_argument("--allow-unknown-fields", dest="unknown_fields", action="store_const", const="warn", help=help)
        p.set_defaults(unknown_fields="error")

    p = command("submit", cmd_submit, "validate and start one order from a JSON file", "file")
    p.add_argument("--wait", action="store_true", help="wait until the order finishes")
    allow_unknown_fields(p)
    p = command(
        "submit-batch", cmd_submit_batch, "validate a JSONL/CSV file of orders, then start the valid ones", "file"
    )
    p.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file extension")
    p.add_argument("--concurrency", type=int, default=32, help="orders started at the same time")
    p.add_argument("--dry-run", action="store_true", help="validate every line, start nothing")
    allow_unknown_fields(p)
    d1_batch = "send the orders to D1 through its batch 'Order cards' API (up to 1,000 cards per call)"
    p.add_argument("--d1-batch", action="store_true", help=d1_batch)
    p.add_argument("--batch-size", type=int, help="cards per D1 call (default D1_BATCH_MAX_CARDS, 1000)")
    p = command("track", cmd_track, "ask D1's tracking hub to follow a card produced outside Thales", "card_id")
    p.add_argument("--type", required=True, choices=list(TRACKING_TYPES))
    p.add_argument("--carrier", help="SHIPMENT / RETURN: D1's carrier code (dhl, fedex, ups, ...)")
    p.add_argument("--tracking-number", help="SHIPMENT / RETURN: the carrier's parcel reference")
    p.add_argument("--production-site", help="PRODUCTION: where the card is produced")
    p.add_argument("--reason", help="RETURN: why the card comes back")
    p.add_argument("--wait", action="store_true", help="wait until the tracking ends")
    output(p)
    output(command("status", cmd_status, "show one order's state and timeline", "issuer_request_id"))
    p = command("list", cmd_list, "list orders, optionally filtered by a visibility query")
    filters(p)
    p.add_argument("--rejected-today", action="store_true", help="orders D1 rejected since midnight UTC")
    p.add_argument("--running", action="store_true", help="open orders only")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--show-query", action="store_true", help="print the visibility query used")
    output(p)
    # Operator commands (docs/operations.md).
    p = command("report", cmd_report, "one day's orders requested, shipped, delivered, returned, failed and late")
    p.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD, a UTC day")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--query", default=None, help="narrow the orders with a visibility query")
    text = "set up a namespace's search attributes (idempotent)"
    p = command("register-search-attributes", cmd_register_search_attributes, text)
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the Temporal server")
    text = "one order's timeline: D1 steps and the order's milestones"
    output(command("timeline", cmd_timeline, text, "issuer_request_id"))
    text = "ask D1's status now, for one order or every running order matched"
    p = command("reconcile", cmd_reconcile, text, "issuer_request_id", nargs="?")
    filters(p)
    p.add_argument("--all-running", action="store_true", help="every running order")
    p.add_argument("--concurrency", type=int, default=20)
    for name, text, address in (
        ("cancel", "cancel an order not yet shipped (pull & change)", None),
        ("accelerate", "ask D1 to speed an order up (pull & change)", "a new deliveryAddress: accelerate and redirect"),
        ("redirect", "ship an order not yet shipped to another address (pull & change)", "the new deliveryAddress"),
    ):
        p = command(name, cmd_change, text, "issuer_request_id")
        p.add_argument("--note", "--reason", dest="note", help="why (kept in the order's view, never sent to D1)")
        if address:
            p.add_argument("--address", help=f"JSON file with {address}")
    for name, text in (
        ("approve", "approve an address change another operator asked for (four eyes): D1 is asked now"),
        ("reject", "reject an address change waiting for approval, or withdraw your own"),
    ):
        p = command(name, cmd_decide, text, "issuer_request_id")
        p.add_argument("change_id", help="the change waiting for approval (redirect-2, ...; see status)")
        p.add_argument("--note", "--reason", dest="note", help="why (kept in the order's view)")
    from starter.lifecycle_cli import register  # it builds on this module

    register(sub)  # replace, renew, reship, renew-batch, card
    return parser


async def run(argv: list[str]) -> int:
    """The CLI inside an already running event loop (tests, notebooks)."""
    return await _run(build_parser().parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_log_redaction()
    # Traces of CLI submissions go to the same backend (OTEL_*); a CLI serves no metrics.
    telemetry = configure_process("cli", logs=False, metrics=False)
    try:
        return asyncio.run(_run(args))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    sys.exit(main())
