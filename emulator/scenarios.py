"""Exception scenarios on demand: which orders leave the happy path, and how.

A sandbox is only useful if a developer can make a card fail the way real cards fail
(Stripe Issuing's and Increase's test helpers are the model). A rule matches an order by
a marker the issuer controls (a ``cardId`` prefix, a ``consumerId``, an
``issuerRequestId`` prefix) and names what happens to it. "Src" says whether D1 documents
that path for a central-issuance PRODUCE operation (D) or it is our reading (G), see
:data:`SCENARIO_SOURCES`:

========================  ===  =========================================================
``DATA_EXCEPTION``        D    after CARD_PROD_REQUESTED: DATA_EXCEPTION (FAILED, reason);
                               terminal. (The errorCode value is ours.)
``CARD_PROD_EXCEPTION``   G    at ``atStatus`` (default CARD_PROD_ONGOING):
                               CARD_PROD_EXCEPTION (FAILED, reason) instead of that step;
                               terminal. The value is documented for instant issuance only.
``ON_HOLD``               G    after CARD_PROD_READY: CARD_PROD_ON_HOLD (reason) for
                               ``holdMs``, then production resumes. D1 draws an on-hold
                               path without a value; the name is ours.
``RETURNED``              G    shipped, then CARD_RETURNED (reason, shipment status
                               Returned); terminal. CARD_RETURNED is documented for the
                               tracking hub, not on a PRODUCE operation.
``NOT_DELIVERED``         G    shipped, then one carrier ``Exception`` update (reason) and
                               silence: the card is never delivered (carrier statuses are
                               not documented by D1).
``ACTIVATED``             D    delivered, then the cardholder activates the card: D1's Card
                               Activation call to the issuer (emulator/activation.py).
``ACTIVATED_BEFORE_``     G    shipped, then activated while in transit (a card intercepted
``DELIVERY``                   in the post), then delivered.
========================  ===  =========================================================

A rule may also set ``stepDelayMs``: that order's own pace (to hold it long enough in a
production stage to exercise pull & change), with or without a scenario.

Rules come from three places, first match wins: rules added at run time
(``POST /_emulator/scenarios``), then the ``EMULATOR_SCENARIOS_FILE`` JSON list, then the
built-in markers :data:`BUILT_IN_RULES` (``cardId`` prefixes ``emu-data-exception``,
``emu-prod-exception``, ``emu-on-hold``, ``emu-returned``, ``emu-not-delivered``,
``emu-activated``, ``emu-early-activation``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from d1.statuses import ProductionStatus as S

ScenarioKind = Literal[
    "DATA_EXCEPTION",
    "CARD_PROD_EXCEPTION",
    "ON_HOLD",
    "RETURNED",
    "NOT_DELIVERED",
    "ACTIVATED",
    "ACTIVATED_BEFORE_DELIVERY",
]

# The central-issuance values D1 documents for PRODUCE (D); everything else is either
# documented elsewhere or our reading (OUR_READING), and unknown values must be tolerated.
DOCUMENTED_CENTRAL_STATUSES: frozenset[str] = frozenset(
    {
        S.CARD_PROD_REQUESTED,
        S.DATA_PREPARED,
        S.DATA_EXCEPTION,
        S.CARD_PROD_READY,
        S.CARD_PROD_ONGOING,
        S.CARD_PROD_DONE,
        S.CARD_SHIPPED,
        S.CARD_PROD_CANCELED,
    }
)
# Statuses we use on a central PRODUCE operation although D1 does not document them there (G).
OUR_READING: dict[str, str] = {
    S.CARD_PROD_ON_HOLD: "on-hold is drawn in D1's status diagram without a value; the name is ours",
    S.CARD_RETURNED: "documented for the tracking hub (trackingType RETURN), not for a PRODUCE operation",
    S.CARD_PROD_EXCEPTION: "documented for instant issuance; central exception paths are drawn without a value",
}

# Whether D1 documents each path for a central-issuance PRODUCE operation (D) or it is our
# reading (G); see OUR_READING for the statuses involved.
SCENARIO_SOURCES: dict[str, dict[str, str]] = {
    "DATA_EXCEPTION": {"source": "D", "note": "documented with details.reason; the errorCode value is ours"},
    "CARD_PROD_EXCEPTION": {"source": "G", "note": "CARD_PROD_EXCEPTION is documented for instant issuance only"},
    "ON_HOLD": {"source": "G", "note": "D1 draws an on-hold path without a value; CARD_PROD_ON_HOLD is our name"},
    "RETURNED": {"source": "G", "note": "CARD_RETURNED is documented for the tracking hub, not on PRODUCE"},
    "NOT_DELIVERED": {"source": "G", "note": "carrier statuses (Exception) are not documented by D1"},
    "ACTIVATED": {"source": "D", "note": "D1's outbound Card Activation call; its retries are ours"},
    "ACTIVATED_BEFORE_DELIVERY": {"source": "G", "note": "an activation while in transit: our sandbox case"},
}


class ScenarioMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cardIdPrefix: str | None = Field(default=None, min_length=1, max_length=48)
    consumerId: str | None = Field(default=None, min_length=1, max_length=64)
    issuerRequestIdPrefix: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _something(self) -> ScenarioMatch:
        if not (self.cardIdPrefix or self.consumerId or self.issuerRequestIdPrefix):
            raise ValueError("a rule must match on cardIdPrefix, consumerId or issuerRequestIdPrefix")
        return self

    def matches(self, card_id: str, consumer_id: str | None, issuer_request_id: str | None) -> bool:
        """Every given criterion must hold."""
        if self.cardIdPrefix is not None and not card_id.startswith(self.cardIdPrefix):
            return False
        if self.consumerId is not None and consumer_id != self.consumerId:
            return False
        if self.issuerRequestIdPrefix is None:
            return True
        return issuer_request_id is not None and issuer_request_id.startswith(self.issuerRequestIdPrefix)


class ScenarioRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: ScenarioMatch
    scenario: ScenarioKind | None = None
    # Text of details.reason (and of the shipment message for NOT_DELIVERED).
    reason: str | None = Field(default=None, max_length=200)
    # CARD_PROD_EXCEPTION: the production step that fails instead of completing.
    atStatus: Literal["DATA_PREPARED", "CARD_PROD_READY", "CARD_PROD_ONGOING", "CARD_PROD_DONE"] = "CARD_PROD_ONGOING"
    # ON_HOLD: how long production stays on hold before it resumes.
    holdMs: int = Field(default=1000, ge=0, le=3_600_000)
    # This order's pace (default: the emulator's step delay).
    stepDelayMs: int | None = Field(default=None, ge=0, le=3_600_000)

    @property
    def default_reason(self) -> str:
        return self.reason or {
            "DATA_EXCEPTION": "personalization data rejected by the emulator (scenario)",
            "CARD_PROD_EXCEPTION": "card personalization failed at the production site (scenario)",
            "ON_HOLD": "production on hold at the personalization center (scenario)",
            "RETURNED": "returned to sender: addressee unknown (scenario)",
            "NOT_DELIVERED": "lost in transit (scenario)",
            "ACTIVATED": "activated by the cardholder (scenario)",
            "ACTIVATED_BEFORE_DELIVERY": "activated while in transit (scenario)",
        }.get(self.scenario or "", "scenario")


BUILT_IN_RULES: tuple[ScenarioRule, ...] = tuple(
    ScenarioRule.model_validate(r)
    for r in (
        {
            "match": {"cardIdPrefix": "emu-data-exception"},
            "scenario": "DATA_EXCEPTION",
            "reason": "name exceeds printable length",
        },
        {
            "match": {"cardIdPrefix": "emu-prod-exception"},
            "scenario": "CARD_PROD_EXCEPTION",
            "reason": "chip personalization failed",
        },
        {
            "match": {"cardIdPrefix": "emu-on-hold"},
            "scenario": "ON_HOLD",
            "reason": "card stock shortage at the personalization center",
            "holdMs": 1000,
        },
        {
            "match": {"cardIdPrefix": "emu-returned"},
            "scenario": "RETURNED",
            "reason": "returned to sender: addressee unknown",
        },
        {"match": {"cardIdPrefix": "emu-not-delivered"}, "scenario": "NOT_DELIVERED", "reason": "lost in transit"},
        {"match": {"cardIdPrefix": "emu-activated"}, "scenario": "ACTIVATED"},
        {"match": {"cardIdPrefix": "emu-early-activation"}, "scenario": "ACTIVATED_BEFORE_DELIVERY"},
    )
)


class ScenariosRequest(BaseModel):
    """Body of ``POST /_emulator/scenarios``: rules to add (first), or to replace the run-time ones."""

    model_config = ConfigDict(extra="forbid")

    rules: list[ScenarioRule] = Field(default_factory=list)
    replace: bool = False


def load_rules_file(path: Path | None) -> list[ScenarioRule]:
    if path is None:
        return []
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        return [ScenarioRule.model_validate(r) for r in raw]
    except (OSError, ValueError, TypeError, ValidationError) as exc:
        raise ValueError(f"scenarios file {path}: {exc}") from None


class Scenarios:
    def __init__(self, configured: list[ScenarioRule] | None = None) -> None:
        self._configured = list(configured or [])
        self._runtime: list[ScenarioRule] = []

    def apply(self, request: ScenariosRequest) -> None:
        if request.replace:
            self._runtime = list(request.rules)
        else:
            self._runtime = [*request.rules, *self._runtime]

    def reset(self) -> None:
        self._runtime.clear()

    def rules(self) -> list[ScenarioRule]:
        return [*self._runtime, *self._configured, *BUILT_IN_RULES]

    def match(self, card_id: str, consumer_id: str | None, issuer_request_id: str | None) -> ScenarioRule | None:
        for rule in self.rules():
            if rule.match.matches(card_id, consumer_id, issuer_request_id):
                return rule
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": [r.model_dump(exclude_none=True) for r in self._runtime],
            "configured": [r.model_dump(exclude_none=True) for r in self._configured],
            "builtIn": [r.model_dump(exclude_none=True) for r in BUILT_IN_RULES],
            "kinds": SCENARIO_SOURCES,
        }
