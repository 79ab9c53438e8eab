"""Opening a message (start argument, signal, update) and deciding whether the workflow may act
on it (docs/security.md, "Messages bound to their order").

The codec has already bound the payload to this workflow (a payload copied from another order
arrives as its refusal marker) and named its sealer (``sealed-by``, security/sealing.py).
What is checked here, in this order, each refusal with its own reason:

* the codec opened it (:data:`NO_ARGUMENT` or the codec's reason, e.g. ``wrong_workflow``);
* it is the model this handler takes, unknown members refused (``invalid``);
* it is of this handler's kind (``wrong_kind``: a redirect's argument is no cancel's);
* its sealer's role may send it (``wrong_sender``: the receiver cannot redirect a card);
* it was issued within the validity window of the workflow's clock (``stale``, ``ahead``);
* its id was not seen before (``replayed``).

The rules are pure functions (:func:`problem`, :func:`sender_allowed`, :func:`remember`); the
rest reads the payload and the clock through the workflow API, so handlers stay a few lines.
A refused message is logged (kind and reason, never values) and counted, and leaves the order
unchanged.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypedDict, TypeVar

from pydantic import ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from contracts.messages import MESSAGE_REFUSED, SEEN_MESSAGES, Message
from observability import names as metric_names
from security.payload_refusal import TAMPERED, UNENCRYPTED, UNKNOWN_KEY, WRONG_WORKFLOW, UnauthenticatedPayload
from security.sealing import EDGE, OPERATOR, RECEIVER, WORKER, role_of, sealer_of

M = TypeVar("M", bound=Message)

# Who may send what (roles of security/sealing.py; OPERATOR: every named operator). The first
# run of a workflow is started by its STARTERS, a continue-as-new by the worker
# (workflows/inputs.py).
ORDER_STARTERS = (EDGE,)  # card orders, trackings, D1 batches: the issuer edge only
INBOX_STARTERS = (RECEIVER,)  # the orphan inbox, started with the receiver's first record
NOTIFIERS = (RECEIVER, WORKER)  # a D1 notification (the worker where the orphan inbox forwards)
RECORDERS = (RECEIVER, WORKER)  # a record of the orphan inbox
CHANGERS = (OPERATOR, EDGE)  # pull & change updates and reconcile_now
BATCH_RESULT_SENDERS = (WORKER,)  # the D1 batch workflow's answer for one card
ACTIVATORS = (RECEIVER,)  # D1's Card Activation (receiver/activation.py), on the order and its record
# The issuer's event hub (events/hub.py). Events come from the worker's emit activity only. The
# endpoints (where an issuer's events go, and the secret that signs them) are the issuer's,
# managed through the issuer API (the edge) only: a named operator cannot point an issuer's
# events elsewhere nor learn a secret (docs/events.md, "Who may manage endpoints").
EVENT_EMITTERS = (WORKER,)
ENDPOINT_MANAGERS = (EDGE,)
HUB_STARTERS = (WORKER, EDGE)  # signal-with-start by the emit activity, update-with-start by the edge
PAGE_STARTERS = (WORKER,)  # a child of the hub

# The default of a handler's argument: the signal or update came without one.
MISSING = RawValue(Payload())

NO_ARGUMENT = "no_argument"
INVALID = "invalid"
WRONG_KIND = "wrong_kind"
WRONG_SENDER = "wrong_sender"
STALE = "stale"
AHEAD = "ahead"
REPLAYED = "replayed"
# Checked by the handler against the order itself.
WRONG_CARD = "wrong_card"
WRONG_BATCH = "wrong_batch"


_UNAUTHENTICATED = frozenset({NO_ARGUMENT, UNENCRYPTED, UNKNOWN_KEY, TAMPERED, WRONG_WORKFLOW})
_SAYS = {
    INVALID: "not of this handler's shape",
    WRONG_KIND: "of another kind",
    WRONG_SENDER: "from a role that may not send it",
    STALE: "older than its validity window",
    AHEAD: "issued ahead of the workflow's clock",
    REPLAYED: "a message already accepted",
    WRONG_CARD: "about another card",
    WRONG_BATCH: "the answer of another batch",
}


@dataclass(frozen=True)
class Window:
    """How old a message may be, and how far ahead of the workflow's clock (OrderTiming)."""

    max_age: timedelta
    max_ahead: timedelta


def sender_allowed(sealer: str | None, roles: Collection[str]) -> bool:
    """``roles`` are roles of security/sealing.py (``operator`` stands for every named operator).
    No sealer: the codec is off (development) or accepts unsealed payloads while a namespace
    migrates; both are documented as letting any client in, so there is no sender to check."""
    if sealer is None:
        return True
    return role_of(sealer) in roles


def problem(
    msg: Message,
    *,
    kinds: Collection[str],
    roles: Collection[str],
    sealer: str | None,
    now: datetime,
    window: Window,
    seen: Collection[str],
) -> str | None:
    """Why the workflow must not act on ``msg`` (a reason of this module), or None."""
    if msg.kind not in kinds:
        return WRONG_KIND
    if not sender_allowed(sealer, roles):
        return WRONG_SENDER
    if msg.issued_at < now - window.max_age:
        return STALE
    if msg.issued_at > now + window.max_ahead:
        return AHEAD
    if msg.message_id in seen:
        return REPLAYED
    return None


def remember(seen: list[str], message_id: str, keep: int = SEEN_MESSAGES) -> None:
    """Add an accepted message's id, keeping the latest ``keep``."""
    seen.append(message_id)
    del seen[:-keep]


@dataclass
class Opened(Generic[M]):
    value: M | None
    sealer: str | None = None
    refusal: str | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None and self.value is not None


def read(raw: RawValue, model: type[M]) -> Opened[M]:
    """The payload as ``model``, with its sealer; a refusal reason instead when it cannot be read."""
    if raw is MISSING:
        return Opened(None, refusal=NO_ARGUMENT)
    try:
        value = workflow.payload_converter().from_payload(raw.payload, model)
    except UnauthenticatedPayload as err:
        return Opened(None, refusal=err.reason)
    except ValidationError:
        return Opened(None, sealer=sealer_of(raw.payload), refusal=INVALID)
    return Opened(value, sealer=sealer_of(raw.payload))


def open_message(
    raw: RawValue,
    model: type[M],
    *,
    kinds: Collection[str],
    roles: Collection[str],
    window: Window,
    seen: Collection[str],
) -> Opened[M]:
    opened = read(raw, model)
    if opened.value is not None and opened.refusal is None:
        opened.refusal = problem(
            opened.value, kinds=kinds, roles=roles, sealer=opened.sealer, now=workflow.now(), window=window, seen=seen
        )
    return opened


def refuse(handler: str, reason: str, sealer: str | None, issuer_id: str) -> None:
    """Log and count a refused message (the kind of refusal and the sealer's role only)."""
    if reason in _UNAUTHENTICATED:
        workflow.logger.warning(
            "refused %s without an authenticated argument (%s); the order is unchanged", handler, reason
        )
    else:
        workflow.logger.warning(
            "refused %s: its argument is %s (sealed by %s); the order is unchanged",
            handler,
            _SAYS.get(reason, reason),
            role_of(sealer) or "nobody known",
        )
    workflow.metric_meter().create_counter(metric_names.MESSAGES_REFUSED).add(
        1, {"issuer_id": issuer_id, "handler": handler, "reason": reason}
    )


def refused_update(handler: str, reason: str) -> ApplicationError:
    """What an update's validator raises for a refused argument (non-retryable)."""
    return ApplicationError(
        f"{handler}: its argument was refused ({reason}); the order is unchanged",
        type=MESSAGE_REFUSED,
        non_retryable=True,
    )


class Stamp(TypedDict):
    message_id: str
    issued_at: datetime


def stamp() -> Stamp:
    """``message_id`` and ``issued_at`` of a message a workflow sends (replay-safe)."""
    return {"message_id": workflow.uuid4().hex, "issued_at": workflow.now()}


@dataclass
class Gate:
    """The message checks of one workflow: its validity window and the ids it accepted
    (``seen``, carried in its state across continue-as-new)."""

    issuer_id: str
    window: Window
    seen: list[str]

    def open(self, handler: str, raw: RawValue, model: type[M], roles: Collection[str], kind: str) -> Opened[M]:
        """The message, checked; a refusal is logged and counted here. Nothing is remembered
        until :meth:`accept` (an update's validator runs this too, and must change nothing)."""
        opened = open_message(raw, model, kinds=(kind,), roles=roles, window=self.window, seen=self.seen)
        if opened.refusal is not None:
            self.refuse(handler, opened.refusal, opened.sealer)
        return opened

    def take(self, handler: str, raw: RawValue, model: type[M], roles: Collection[str], kind: str) -> M | None:
        """The message, checked and accepted; None if refused."""
        opened = self.open(handler, raw, model, roles, kind)
        if not opened.ok or opened.value is None:
            return None
        self.accept(opened.value)
        return opened.value

    def refuse(self, handler: str, reason: str, sealer: str | None = None) -> None:
        refuse(handler, reason, sealer, self.issuer_id)

    def accept(self, msg: Message) -> None:
        remember(self.seen, msg.message_id)
