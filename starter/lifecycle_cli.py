"""The CLI's commands for the card's life after its order (starter/replacement.py):
``replace``, ``renew``, ``reship``, ``renew-batch`` and ``card`` (docs/operations.md,
"Replacement, renewal and re-shipment")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from contracts import search_attributes as sa
from contracts.card_order import card_query
from d1.validation import InvalidOrder
from settings import TemporalSettings
from starter.api import CardOrders, OrderRefused, SubmittedOrder
from starter.cli import EXIT_INVALID, EXIT_NOT_FOUND, EXIT_REFUSED, Exit, _read_json
from starter.output import format_view, invalid_text, json_text
from starter.replacement import NoPreviousOrder, Reason, Replacement

REASONS = ("LOST", "STOLEN", "DAMAGED", "EXPIRED", "OTHER")


async def _new_card(args: argparse.Namespace) -> dict[str, Any]:
    card_data = await _read_json(args.card_data, "the new card's data (JSON: pan, exp, ...)")
    changes = await _read_json(args.changes, "the changes (JSON)") if getattr(args, "changes", None) else None
    return {"new_card_id": args.new_card_id, "card_data": card_data, "issuer_request_id": args.issuer_request_id} | (
        {"changes": changes} if changes is not None else {}
    )


async def _started(args: argparse.Namespace, orders: CardOrders, issuer_id: str, call: Any) -> int:
    try:
        submitted: SubmittedOrder = await call
    except InvalidOrder as err:
        raise Exit(EXIT_INVALID, invalid_text(f"{args.command} {args.card_id}", err)) from None
    except OrderRefused as err:
        raise Exit(EXIT_REFUSED, f"refused: {err}") from None
    except NoPreviousOrder as err:
        raise Exit(EXIT_NOT_FOUND, str(err)) from None
    print(f"{submitted.workflow_id} {'started' if submitted.created else 'already exists'}")
    if args.wait:
        rid = submitted.workflow_id.rsplit(":", 1)[1]
        print(format_view(await orders.wait(issuer_id, rid)))
    return 0


async def cmd_replace(args: argparse.Namespace, issuer_id: str) -> int:
    given = await _new_card(args)
    orders = await CardOrders.connect(TemporalSettings())
    if args.command == "renew":
        call = orders.renew(issuer_id, args.card_id, **given)
    else:
        call = orders.replace(issuer_id, args.card_id, args.reason, **given)
    return await _started(args, orders, issuer_id, call)


async def cmd_reship(args: argparse.Namespace, issuer_id: str) -> int:
    given = await _new_card(args)
    address = await _read_json(args.address, "a JSON address")
    orders = await CardOrders.connect(TemporalSettings())
    return await _started(args, orders, issuer_id, orders.reship(issuer_id, args.card_id, address, **given))


async def cmd_renew_batch(args: argparse.Namespace, issuer_id: str) -> int:
    """A renewal campaign from a JSONL file: one renewal a line, through D1's batch API."""
    path = Path(args.file)
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        renewals = [
            Replacement(
                issuer_id=line.get("issuerId") or issuer_id,
                card_id=line["cardId"],
                reason=Reason.RENEWAL,
                new_card_id=line["newCardId"],
                card_data=line["cardData"],
                issuer_request_id=line.get("issuerRequestId"),
                changes=line.get("changes"),
            )
            for line in lines
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        expected = "JSONL: cardId, newCardId, cardData"
        raise Exit(EXIT_INVALID, f"{path}: cannot read the renewals ({expected}): {exc!r}") from None
    orders = await CardOrders.connect(TemporalSettings())
    results = await orders.renew_many(renewals, d1_batches=not args.no_d1_batch)
    for r in results:
        if r.refused or r.failed:
            what = "refused" if r.refused else "failed"
            print(f"line {r.index + 1}: {what}: {r.refused or r.failed}", file=sys.stderr)
    started = [r for r in results if r.submitted is not None]
    batches = sorted({r.d1_batch for r in started if r.d1_batch})
    print(f"{len(started)} renewal(s) started of {len(results)}; D1 batches: {', '.join(batches) or '-'}")
    return 0 if len(started) == len(results) else EXIT_REFUSED


async def cmd_card(args: argparse.Namespace, issuer_id: str) -> int:
    """A card's orders, what it replaces and is replaced by, its activation."""
    orders = await CardOrders.connect(TemporalSettings())
    own = await orders.list(card_query(args.card_id, issuer_id))
    if not own:
        raise Exit(EXIT_NOT_FOUND, f"no order of card {args.card_id} for issuer {issuer_id}")
    replaced_by = await orders.replacements(issuer_id, args.card_id)
    # Search attributes only: the orders' payloads are the worker's.
    latest = await orders.client.get_workflow_handle(own[0].workflow_id).describe()
    replaces = latest.typed_search_attributes.get(sa.REPLACES_CARD_ID)
    activation = await orders.activation(issuer_id, args.card_id)
    found = {
        "cardId": args.card_id,
        "orders": [o.workflow_id for o in own],
        "replaces": replaces[0] if replaces else None,
        "replacedBy": [o.card_id for o in replaced_by],
        "activation": activation.model_dump(mode="json") if activation is not None else None,
    }
    if args.output == "json":
        print(json_text(found))
        return 0
    print(f"card        {args.card_id}\norders      {', '.join(found['orders'])}")
    print(f"replaces    {found['replaces'] or '-'}\nreplaced by {', '.join(found['replacedBy']) or '-'}")
    print(f"activation  {f'{activation.flag.value} at {activation.activated_at}' if activation else '-'}")
    return 0


def register(sub: Any) -> None:
    """Add the commands to the CLI's sub-parsers (starter/cli.py)."""

    def new_card(p: argparse.ArgumentParser) -> None:
        p.add_argument("card_id", help="the card replaced")
        p.add_argument("--new-card-id", required=True, help="the new card's id")
        p.add_argument("--card-data", required=True, metavar="FILE", help="JSON: the new card's data (pan, exp, ...)")
        p.add_argument("--issuer-request-id", help="default: <replace|renew|reship>-<new card id>")
        p.add_argument("--wait", action="store_true", help="wait until the new order finishes")

    p = sub.add_parser("replace", help="order a new card in place of a lost, stolen, damaged or expired one")
    p.set_defaults(func=cmd_replace)
    new_card(p)
    p.add_argument("--reason", required=True, type=str.upper, choices=REASONS)
    p.add_argument("--changes", metavar="FILE", help="JSON: members that differ from the last order")
    p = sub.add_parser("renew", help="order the renewal of a card (issuance RENEWAL)")
    p.set_defaults(func=cmd_replace)
    new_card(p)
    p.add_argument("--changes", metavar="FILE", help="JSON: members that differ from the last order")
    p = sub.add_parser("reship", help="re-ship a returned or lost card to a corrected address")
    p.set_defaults(func=cmd_reship)
    new_card(p)
    p.add_argument("--address", required=True, metavar="FILE", help="JSON: the corrected deliveryAddress")
    p = sub.add_parser("renew-batch", help="a renewal campaign from a JSONL file, through D1's batch API")
    p.set_defaults(func=cmd_renew_batch)
    p.add_argument("file")
    p.add_argument("--no-d1-batch", action="store_true", help="one D1 call per card instead")
    p = sub.add_parser("card", help="a card's orders, replacements and activation")
    p.set_defaults(func=cmd_card)
    p.add_argument("card_id")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
