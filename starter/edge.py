"""The issuer's edge: the one place the product handles clear card data. Within one call an
order is validated, its card data encrypted into D1's JWE, the D1 body checked for card data
outside it, and the workflow input built; what leaves (:class:`PreparedOrder`) holds no clear card
data. The key file is re-read when it changes (docs/operations.md, "D1 encryption key")."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwcrypto import jwk
from pydantic import ValidationError
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from contracts import card_order as api
from contracts import card_tracking as tracking_api
from contracts import search_attributes as sa
from contracts.card_order import ApprovalPolicy, CardOrderInput, D1Submission, OrderRef, OrderTiming
from contracts.card_tracking import TrackingInput, TrackingRef
from d1.card_data_guard import card_data_issues
from d1.issues import Issue, issues_from_validation_error
from d1.jwe import encrypt_for_d1
from d1.masking import mask_pan
from d1.order import Address, CardOrder
from d1.patterns import CARD_ID_PATTERN
from d1.program import Program, load_program
from d1.tracking import track_card_model
from d1.validation import FieldError, FieldWarning, InvalidOrder, UnknownFields, check_order, validate_address
from security.keys import KeyFileError, load_d1_encryption_key

CARD_ID = re.compile(CARD_ID_PATTERN)


@dataclass(frozen=True)
class PreparedOrder:
    """An order ready for Temporal: identifiers, the JWE, the masked PAN; no clear card data."""

    workflow_id: str
    input: CardOrderInput
    search_attributes: TypedSearchAttributes
    summary: str
    details: str
    warnings: tuple[FieldWarning, ...] = ()

    @property
    def ref(self) -> OrderRef:
        return self.input.ref


@dataclass(frozen=True)
class PreparedTracking:
    """A tracking-hub request ready for Temporal (identifiers and D1's body; no card data)."""

    workflow_id: str
    input: TrackingInput
    search_attributes: TypedSearchAttributes
    summary: str
    details: str | None = None


def approval_policy(program: Program) -> ApprovalPolicy:
    """Four eyes on an address change, as the program sets it, for the order's input."""
    rules = program.pullAndChange
    return ApprovalPolicy(four_eyes=rules.fourEyesAddressChange, expires_after=rules.addressChangeApprovalExpiry)


@dataclass(frozen=True)
class KeyFile:
    """D1's public encryption key from a file, re-read when the file changes (rotation)."""

    path: Path

    def current(self) -> jwk.JWK:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise KeyFileError(
                f"cannot read D1's encryption key {self.path}: {exc.strerror} (D1_ENCRYPTION_PUBLIC_KEY_FILE)"
            ) from None
        return _load_key(self.path, stat.st_mtime, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_key(path: Path, mtime: float, size: int) -> jwk.JWK:
    """Cached per (path, mtime, size): a changed file is a new key."""
    return load_d1_encryption_key(path)


def order_ref(order: CardOrder) -> OrderRef:
    shipment = order.shipment
    return OrderRef(
        issuer_id=order.issuerId,
        card_id=order.cardId,
        issuer_request_id=order.issuerRequestId,
        consumer_id=order.consumerId,
        card_product_id=order.cardProductId,
        masked_pan=mask_pan(order.cardData.pan),
        shipment_type=shipment.type if shipment else None,
        group_id=shipment.groupId if shipment else None,
        bulk_order_id=shipment.orderId if shipment else None,
        distribution_channel=order.distributionChannel,
    )


def _search_attributes(*pairs: tuple[SearchAttributeKey[str], str | None]) -> TypedSearchAttributes:
    """The keys with a value (an absent consumer or group id is no attribute)."""
    return TypedSearchAttributes([SearchAttributePair(key, value) for key, value in pairs if value])


def _field_errors(issues: list[Issue]) -> list[FieldError]:
    return [FieldError(i.dotted("$"), i.reason) for i in issues]


@dataclass(frozen=True, kw_only=True)
class OrderEdge:
    """Validate, encrypt for D1, check, and build the workflow input for one order at a time."""

    program_file: Path
    encryption_key: KeyFile | jwk.JWK
    expiry_format: str | None = None

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> OrderEdge:
        """From ``D1_PROGRAM_FILE``, ``D1_EXPIRY_FORMAT`` and ``D1_ENCRYPTION_PUBLIC_KEY_FILE``."""
        from settings import D1ClientSettings

        s = settings or D1ClientSettings()
        return cls(
            program_file=s.program_file,
            encryption_key=KeyFile(s.encryption_public_key_file),
            expiry_format=s.expiry_format,
        )

    @property
    def program(self) -> Program:
        return load_program(self.program_file)

    def check(
        self, raw: Any, *, unknown_fields: UnknownFields = "error"
    ) -> tuple[CardOrder | None, list[FieldError], list[FieldWarning]]:
        """Every problem of a clear order (no encryption): (order or None, errors, warnings)."""
        checked = check_order(
            raw, program=self.program, unknown_fields=unknown_fields, expiry_format=self.expiry_format
        )
        return checked.order, checked.errors, checked.warnings

    def prepare(
        self, order: CardOrder | Mapping[str, Any], *, timing: OrderTiming, unknown_fields: UnknownFields | None = None
    ) -> PreparedOrder:
        """The order, encrypted for D1 and ready for Temporal, or :class:`InvalidOrder`.

        A dict gets every rule (unknown members are errors unless ``unknown_fields="warn"``).
        A ``CardOrder`` built by hand gets every rule too; its extra members are warnings
        (whoever built it put them there), and the card-data check applies as always."""
        if isinstance(order, CardOrder):
            raw: Any = order.model_dump(mode="json", exclude_none=True)
            mode: UnknownFields = unknown_fields or "warn"
        else:
            raw, mode = order, unknown_fields or "error"
        checked, errors, warnings = self.check(raw, unknown_fields=mode)
        if checked is None:
            raise InvalidOrder(errors, warnings)
        return self._encrypt(checked, timing, tuple(warnings))

    def _encrypt(self, order: CardOrder, timing: OrderTiming, warnings: tuple[FieldWarning, ...]) -> PreparedOrder:
        program = self.program
        key = self.encryption_key.current() if isinstance(self.encryption_key, KeyFile) else self.encryption_key
        # Where the tracks travel is the program's (d1/assumptions.py); encrypted by default.
        track_clear = program.interface.trackDataPlacement == "clear"
        plaintext = order.sensitive_plaintext(include_tracks=not track_clear)
        body = order.d1_body(encrypt_for_d1(plaintext, key), tracks_in_clear=track_clear)
        clear_members = frozenset({"trackData"}) if track_clear else frozenset()
        leaks = card_data_issues(body, clear_members=clear_members)
        if leaks:
            raise InvalidOrder(_field_errors(leaks), list(warnings))
        ref = order_ref(order)
        return PreparedOrder(
            workflow_id=api.workflow_id(order.issuerId, order.issuerRequestId),
            input=CardOrderInput(
                ref=ref,
                timing=timing,
                submission=D1Submission(body=body, encryption_kid=str(key.get("kid"))),
                approvals=approval_policy(program),
            ),
            search_attributes=_search_attributes(
                (sa.ISSUER_ID, order.issuerId),
                (sa.CARD_ID, order.cardId),
                (sa.ISSUER_REQUEST_ID, order.issuerRequestId),
                (sa.CONSUMER_ID, order.consumerId),
                (sa.GROUP_ID, ref.group_id),
            ),
            summary=f"Card {order.cardId} · request {order.issuerRequestId}",
            details=(
                f"Issuer {order.issuerId}, product {order.cardProductId}, channel {order.distributionChannel}, "
                f"PAN {ref.masked_pan}"
            ),
            warnings=warnings,
        )

    def prepare_tracking(
        self,
        issuer_id: str,
        card_id: str,
        tracking_type: str,
        *,
        details: Mapping[str, Any] | None = None,
        timing: OrderTiming,
    ) -> PreparedTracking:
        """A Track Card request (the tracking hub), validated with D1's reading of its body
        (d1/tracking.py) and checked for card data, or :class:`InvalidOrder`."""
        body: dict[str, Any] = {**(details or {}), "trackingType": tracking_type}
        issues: list[Issue] = []
        if not CARD_ID.match(card_id):
            issues.append(Issue(("cardId",), "must be 1-48 characters: letters, digits, '_' or '-'"))
        model = track_card_model(body)
        try:
            model.model_validate(body)
        except ValidationError as err:
            issues += issues_from_validation_error(err)
        issues += card_data_issues(body)
        if issues:
            raise InvalidOrder(_field_errors(issues))
        given = body.get("shipment")
        shipment: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        ref = TrackingRef(
            issuer_id=issuer_id,
            card_id=card_id,
            tracking_type=tracking_type,  # type: ignore[arg-type]
            carrier=shipment.get("carrier"),
            tracking_number=shipment.get("trackingNumber"),
        )
        return PreparedTracking(
            workflow_id=tracking_api.workflow_id(issuer_id, card_id, tracking_type),
            input=TrackingInput(
                ref=ref, request=body, timing=timing, reconcile=self.program.interface.productionStatusAnswersTracking
            ),
            search_attributes=_search_attributes((sa.ISSUER_ID, issuer_id), (sa.CARD_ID, card_id)),
            summary=f"Tracking {tracking_type} of card {card_id}",
        )

    def address(self, value: Address | Mapping[str, Any]) -> Address:
        """A pull & change address, validated against the program (InvalidOrder otherwise)."""
        raw = value.model_dump(mode="json", exclude_none=True) if isinstance(value, Address) else value
        address = validate_address(raw, program=self.program)
        leaks = card_data_issues({"newDeliveryAddress": address.model_dump(mode="json", exclude_none=True)})
        if leaks:
            raise InvalidOrder(_field_errors(leaks))
        return address
