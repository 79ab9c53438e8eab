"""Reading a workflow's input so that a bad one ends the workflow instead of looping.

A conversion error in the SDK would fail every workflow task (the workflow would neither
run nor end), so the product's workflows take their input raw and read it here, in
``@workflow.init``:

* an input the payload codec refused (not sealed at all: a client without the product's
  keys started it) makes ``run`` fail the workflow at once, non-retryable;
* an input sealed by a key this worker does not have fails the workflow *task* (retried):
  a key roll-out that has not reached this worker yet, which heals once it does;
* an input that does not match the model, an earlier shape included, fails the workflow,
  non-retryable, as ``InvalidInput`` with the field paths (never the values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from security.payload_refusal import UNENCRYPTED, UnauthenticatedPayload

M = TypeVar("M", bound=BaseModel)


@dataclass
class Input(Generic[M]):
    value: M | None
    refused: str | None = None
    invalid: list[str] = field(default_factory=list)

    def check(self, model: type[M]) -> M:
        """The input, or the reason this workflow cannot run (call at the start of ``run``)."""
        if self.refused == UNENCRYPTED:
            raise ApplicationError(
                "refused: this workflow's input is not sealed by the product's payload codec "
                "(started by a client without the product's keys); nothing was sent to D1",
                type="UnauthenticatedInput",
                non_retryable=True,
            )
        if self.refused is not None:
            raise RuntimeError(f"workflow input refused by the payload codec ({self.refused})")
        if self.invalid or self.value is None:
            raise ApplicationError(
                f"the workflow input does not match {model.__name__}: " + "; ".join(self.invalid[:20]),
                type="InvalidInput",
                non_retryable=True,
            )
        return self.value


def read_input(raw: RawValue, model: type[M]) -> Input[M]:
    try:
        return Input(workflow.payload_converter().from_payload(raw.payload, model))
    except UnauthenticatedPayload as err:
        return Input(None, refused=err.reason)
    except ValidationError as err:
        return Input(None, invalid=[_problem(e["loc"], e["msg"]) for e in err.errors(include_input=False)])


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    return f"{'.'.join(map(str, loc))}: {msg}" if loc else msg
