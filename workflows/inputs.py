"""Reading a workflow's input so that a bad one ends the workflow instead of looping.

A conversion error in the SDK would fail every workflow task (the workflow would neither
run nor end), so the product's workflows take their input raw and read it here, in
``@workflow.init``. The input is a message (contracts/messages.py) like any signal, opened by
the same rules (workflows/messages.py); an input the workflow cannot act on makes ``run`` end
the workflow at once, non-retryable, with ``OrderOutcome`` = ``INPUT_REFUSED`` and the
``CardId`` / ``IssuerId`` it claimed cleared (a squatter's start does not stay Running with
forged attributes, blocking the real order):

* not sealed at all (a client without the product's keys): ``UnauthenticatedInput``;
* refused by the codec otherwise (a key this worker does not have, another workflow's
  payload, tampered), of another kind, sealed by a role that may not start this workflow, or
  issued outside the validity window: ``InputRefused``, the reason in the message;
* not matching the model, an earlier shape included: ``InvalidInput`` with the field paths
  (never the values).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from contracts import search_attributes as sa
from contracts.messages import MAX_AGE, MAX_AHEAD, Message
from security.payload_refusal import UNENCRYPTED, UnauthenticatedPayload
from security.sealing import WORKER, role_of, sealer_of
from workflows.messages import Window, problem

M = TypeVar("M", bound=Message)

# What an operator filters on: OrderOutcome = "INPUT_REFUSED".
INPUT_REFUSED = "INPUT_REFUSED"


@dataclass
class Input(Generic[M]):
    value: M | None
    refused: str | None = None
    invalid: list[str] = field(default_factory=list)
    sealer: str | None = None

    def check(self, model: type[M]) -> M:
        """The input, or the reason this workflow cannot run (call at the start of ``run``)."""
        if self.refused is None and not self.invalid and self.value is not None:
            return self.value
        _mark_refused()
        if self.refused == UNENCRYPTED:
            raise ApplicationError(
                "refused: this workflow's input is not sealed by the product's payload codec "
                "(started by a client without the product's keys); nothing was sent to D1",
                type="UnauthenticatedInput",
                non_retryable=True,
            )
        if self.refused is not None:
            raise ApplicationError(
                f"refused: this workflow's input cannot be acted on ({self.refused}, sealed by "
                f"{role_of(self.sealer) or 'nobody known'}); nothing was sent to D1",
                type="InputRefused",
                non_retryable=True,
            )
        raise ApplicationError(
            f"the workflow input does not match {model.__name__}: " + "; ".join(self.invalid[:20]),
            type="InvalidInput",
            non_retryable=True,
        )


def start_roles(first_run: Collection[str]) -> Collection[str]:
    """Who may seal this run's input: ``first_run`` roles, the worker on continue-as-new."""
    return (WORKER,) if workflow.info().continued_run_id else first_run


def read_input(
    raw: RawValue, model: type[M], *, kind: str, roles: Collection[str], window: Window | None = None
) -> Input[M]:
    """Read and check the input; ``window`` defaults to the one of contracts/messages.py (the
    card workflows pass their OrderTiming's, read from the input itself)."""
    try:
        value = workflow.payload_converter().from_payload(raw.payload, model)
    except UnauthenticatedPayload as err:
        return Input(None, refused=err.reason)
    except ValidationError as err:
        invalid = [_problem(e["loc"], e["msg"]) for e in err.errors(include_input=False)]
        return Input(None, invalid=invalid, sealer=sealer_of(raw.payload))
    sealer = sealer_of(raw.payload)
    timing = getattr(value, "timing", None)
    if window is None:
        window = Window(
            max_age=getattr(timing, "message_max_age", MAX_AGE),
            max_ahead=getattr(timing, "message_max_ahead", MAX_AHEAD),
        )
    # Measured from this run's start (the server's time), not from when a busy worker gets to it.
    refusal = problem(
        value,
        kinds=(kind,),
        roles=roles,
        sealer=sealer,
        now=workflow.info().workflow_start_time,
        window=window,
        seen=(),
    )
    return Input(None if refusal else value, refused=refusal, sealer=sealer)


def _mark_refused() -> None:
    workflow.upsert_search_attributes(
        [sa.ORDER_OUTCOME.value_set(INPUT_REFUSED), sa.CARD_ID.value_unset(), sa.ISSUER_ID.value_unset()]
    )


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    return f"{'.'.join(map(str, loc))}: {msg}" if loc else msg
