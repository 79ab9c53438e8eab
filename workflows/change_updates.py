"""The pull & change updates of ``CardOrderWorkflow`` (workflows/card_order.py): one per kind, made alike."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import RawValue

from contracts import card_order as api
from workflows.messages import MISSING


def change_update(kind: str, description: str) -> Any:
    """The update (and its validator) for one pull & change ``kind``; ``self`` stays unannotated:
    the SDK leaves out of the update's argument types only a first parameter without a type."""

    async def handler(self, raw: RawValue = MISSING) -> api.ChangeRecord:  # type: ignore[no-untyped-def]
        return await self._pull_and_change(kind, raw)  # type: ignore[no-any-return]

    def validator(self, raw: RawValue = MISSING) -> None:  # type: ignore[no-untyped-def]
        self._reject_change(kind, raw)

    update = workflow.update(name=api.CHANGE_UPDATES[kind], description=description)(handler)
    update.validator(validator)
    return update
