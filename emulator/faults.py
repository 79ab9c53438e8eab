"""Run-time fault injection and timing, set through ``POST /_emulator/faults``.

Faults are queues consumed one request at a time, so a test can say "the next three
order requests fail with 503" and then observe the client's retries succeed. Each D1
endpoint kind has its own queue and its own random share: ``order`` (single card order),
``batch`` (the "Order cards" API), ``status`` (productionStatus) and ``track`` (the
tracking hub's Track Card).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FailureRule(BaseModel):
    """``count`` consecutive requests answer ``status``.

    ``afterProcessing`` processes the request first (the order is really accepted) and then
    answers ``status`` anyway: the ambiguous failure a client must resolve by retrying with
    the same issuerRequestId. ``delayMs`` waits before answering (a slow D1 / client timeout).
    ``status`` may be omitted to inject only the delay. ``hold`` keeps the request open (before
    processing it, or after with ``afterProcessing``) until ``POST /_emulator/holds/release``:
    a crash test kills the client while D1 holds its request (``holds.py``).
    """

    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(default=None, ge=400, le=599)
    count: int = Field(default=1, ge=1)
    afterProcessing: bool = False
    delayMs: int = Field(default=0, ge=0, le=600_000)
    # What the injected error body says (D1's convention); defaults to a generic server error.
    errorCode: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, max_length=256)
    # Seconds sent in a Retry-After header (meaningful with 429 and 503).
    retryAfterS: int | None = Field(default=None, ge=0, le=3600)
    hold: bool = False


class NotificationChaos(BaseModel):
    """At-least-once delivery at its worst (D1's notification guide): each notification is lost
    with probability ``lossRatio`` (only productionStatus then tells the truth), otherwise
    sent 1 to ``duplicateMax`` times, each copy after a random delay up to ``maxDelayMs``
    and independently of the others, so copies and steps arrive out of order."""

    model_config = ConfigDict(extra="forbid")

    lossRatio: float = Field(default=0.0, ge=0.0, le=1.0)
    duplicateMax: int = Field(default=1, ge=1, le=10)
    maxDelayMs: int = Field(default=0, ge=0, le=600_000)
    seed: int | None = None


class FailureShare(BaseModel):
    """A share of requests fail, chosen at random: ``ratio`` of them answer one of
    ``statuses`` (429 carries Retry-After), are delayed by ``delayMs`` (past the client's
    timeout), or are cut mid-response, in the proportions given by ``kinds``."""

    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(default=0.0, ge=0.0, le=1.0)
    statuses: list[int] = Field(default_factory=lambda: [500, 502, 503, 429])
    kinds: list[str] = Field(default_factory=lambda: ["status", "status", "delay", "cut"])
    delayMs: int = Field(default=20_000, ge=0, le=600_000)
    retryAfterS: int = Field(default=1, ge=0, le=60)
    seed: int | None = None


EndpointKind = Literal["order", "batch", "status", "track"]
ENDPOINT_KINDS: tuple[EndpointKind, ...] = ("order", "batch", "status", "track")


class FaultsRequest(BaseModel):
    """Body of ``POST /_emulator/faults``. Absent members leave the current setting alone;
    a present failure list replaces the pending one."""

    model_config = ConfigDict(extra="forbid")

    orderFailures: list[FailureRule] | None = None
    batchFailures: list[FailureRule] | None = None
    statusFailures: list[FailureRule] | None = None
    trackFailures: list[FailureRule] | None = None
    dropNotifications: bool | None = None
    stepDelayMs: int | None = Field(default=None, ge=0)
    # The next N accepted orders fail data preparation (DATA_EXCEPTION, status FAILED).
    dataExceptions: int | None = Field(default=None, ge=0)
    # Record notification bodies (GET /_emulator/captured) instead of sending them.
    captureNotifications: bool | None = None
    # Random faults, for chaos runs. ``null`` members are left alone; send ``{}`` to switch off.
    notificationChaos: NotificationChaos | None = None
    orderFailureShare: FailureShare | None = None
    batchFailureShare: FailureShare | None = None
    statusFailureShare: FailureShare | None = None
    trackFailureShare: FailureShare | None = None

    def failures(self, kind: EndpointKind) -> list[FailureRule] | None:
        rules: list[FailureRule] | None = getattr(self, f"{kind}Failures")
        return rules

    def share(self, kind: EndpointKind) -> FailureShare | None:
        share: FailureShare | None = getattr(self, f"{kind}FailureShare")
        return share


@dataclass(frozen=True)
class Injection:
    """One request's share of a rule."""

    status: int | None
    after_processing: bool
    delay_s: float
    error_code: str | None = None
    error: str | None = None
    retry_after_s: int | None = None
    cut: bool = False  # close the connection in the middle of the response body
    hold: bool = False  # keep the request open until released (holds.py)


def _expand(rules: list[FailureRule]) -> deque[Injection]:
    out: deque[Injection] = deque()
    for rule in rules:
        for _ in range(rule.count):
            out.append(
                Injection(
                    rule.status,
                    rule.afterProcessing,
                    rule.delayMs / 1000,
                    rule.errorCode,
                    rule.error,
                    rule.retryAfterS,
                    hold=rule.hold,
                )
            )
    return out


@dataclass
class Faults:
    default_step_delay_ms: int
    step_delay_ms: int = 0
    drop_notifications: bool = False
    data_exceptions: int = 0
    capture_notifications: bool = False
    chaos: NotificationChaos = field(default_factory=NotificationChaos)
    _rng: random.Random = field(default_factory=random.Random)
    _queues: dict[EndpointKind, deque[Injection]] = field(
        default_factory=lambda: {kind: deque() for kind in ENDPOINT_KINDS}
    )
    _shares: dict[EndpointKind, FailureShare] = field(
        default_factory=lambda: {kind: FailureShare() for kind in ENDPOINT_KINDS}
    )

    def __post_init__(self) -> None:
        self.step_delay_ms = self.default_step_delay_ms

    def apply(self, request: FaultsRequest) -> None:
        for kind in ENDPOINT_KINDS:
            rules = request.failures(kind)
            if rules is not None:
                self._queues[kind] = _expand(rules)
        if request.dropNotifications is not None:
            self.drop_notifications = request.dropNotifications
        if request.stepDelayMs is not None:
            self.step_delay_ms = request.stepDelayMs
        if request.dataExceptions is not None:
            self.data_exceptions = request.dataExceptions
        if request.captureNotifications is not None:
            self.capture_notifications = request.captureNotifications
        shares = [request.share(kind) for kind in ENDPOINT_KINDS]
        for share in (request.notificationChaos, *shares):
            if share is not None and share.seed is not None:
                self._rng.seed(share.seed)
        if request.notificationChaos is not None:
            self.chaos = request.notificationChaos
        for kind, share in zip(ENDPOINT_KINDS, shares, strict=True):
            if share is not None:
                self._shares[kind] = share

    def reset(self) -> None:
        for queue in self._queues.values():
            queue.clear()
        self.drop_notifications = False
        self.data_exceptions = 0
        self.capture_notifications = False
        self.chaos = NotificationChaos()
        self._shares = {kind: FailureShare() for kind in ENDPOINT_KINDS}
        self.step_delay_ms = self.default_step_delay_ms

    def next_injection(self, kind: EndpointKind) -> Injection | None:
        """The fault for the next request to an endpoint of ``kind`` (None: handle it normally)."""
        queue = self._queues[kind]
        return queue.popleft() if queue else self._draw(self._shares[kind])

    def next_order_injection(self) -> Injection | None:
        return self.next_injection("order")

    def next_status_injection(self) -> Injection | None:
        return self.next_injection("status")

    def _draw(self, share: FailureShare) -> Injection | None:
        if share.ratio <= 0 or self._rng.random() >= share.ratio:
            return None
        kind = self._rng.choice(share.kinds or ["status"])
        if kind == "delay":
            return Injection(None, False, share.delayMs / 1000)
        if kind == "cut":
            return Injection(None, False, 0.0, cut=True)
        status = self._rng.choice(share.statuses or [503])
        return Injection(status, False, 0.0, retry_after_s=share.retryAfterS if status in (429, 503) else None)

    def notification_copies(self) -> list[float]:
        """Delays (seconds) of the copies to send for one notification; empty = lost."""
        chaos = self.chaos
        if chaos.lossRatio and self._rng.random() < chaos.lossRatio:
            return []
        copies = self._rng.randint(1, chaos.duplicateMax)
        return [self._rng.uniform(0, chaos.maxDelayMs / 1000) for _ in range(copies)]

    @property
    def chaos_active(self) -> bool:
        c = self.chaos
        return c.lossRatio > 0 or c.duplicateMax > 1 or c.maxDelayMs > 0

    def take_data_exception(self) -> bool:
        if self.data_exceptions > 0:
            self.data_exceptions -= 1
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for kind in ENDPOINT_KINDS:
            body[f"pending{kind.capitalize()}Failures"] = len(self._queues[kind])
        body.update(
            {
                "dropNotifications": self.drop_notifications,
                "stepDelayMs": self.step_delay_ms,
                "dataExceptions": self.data_exceptions,
                "captureNotifications": self.capture_notifications,
                "notificationChaos": self.chaos.model_dump(),
            }
        )
        for kind in ENDPOINT_KINDS:
            body[f"{kind}FailureShare"] = self._shares[kind].model_dump()
        return body
