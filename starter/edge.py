"""The issuer's edge: the one place the product handles clear card data. Within one call an
order is validated, its card data encrypted into D1's JWE, the D1 body checked for card data
outside it, and the workflow input built; what leaves (:class:`PreparedOrder`) holds no clear card
data. The key file is re-read when it changes (docs/operations.md, "D1 encryption key")."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
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
from d1.card_data_guard import card_data_issues, identifier_issues
from d1.issues import Issue, issues_from_validation_error
from d1.jwe import encrypt_for_d1
from d1.masking import mask_pan
from d1.order import Address, CardOrder, parse_card_order
from d1.patterns import CARD_ID_PATTERN
from d1.program import Program, load_program
from d1.tracking import track_card_model
from d1.validation import FieldError, FieldWarning, InvalidOrder, UnknownFields, check_order, validate_address
from security.keys import KeyFileError, load_d1_encryption_key
from starter.same_order import body_digest

CARD_ID = re.compile(CARD_ID_PATTERN)
log = logging.getLogger("starter.edge")


@dataclass(frozen=True)
class PreparedOrder:
    """An order ready for Temporal: identifiers, the JWE, the masked PAN; no clear card data."""

    workflow_id: str
    input: CardOrderInput
    search_attributes: TypedSearchAttributes
    summary: str
    details: str
    warnings: tuple[FieldWarning, ...] = ()
    # D1's body without its JWE, digested (starter/same_order.py): kept when the order joins a D1
    # batch, so a retry can still be told from a foreign start that took its workflow id.
    d1_body_digest: str | None = None
    # Given to the workflow at start (the issuer API: who asked, the request's fingerprint).
    memo: Mapping[str, Any] | None = None

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
    """D1's public encryption key from a file, re-read when the file changes (rotation); with
    ``kids`` / ``thumbprints``, pinned: another key in the file is refused (security/keys.py)."""

    path: Path
    kids: frozenset[str] = frozenset()
    thumbprints: frozenset[str] = frozenset()

    def current(self) -> jwk.JWK:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise KeyFileError(
                f"cannot read D1's encryption key {self.path}: {exc.strerror} (D1_ENCRYPTION_PUBLIC_KEY_FILE)"
            ) from None
        return _load_key(self.path, stat.st_mtime, stat.st_size, self.kids, self.thumbprints)


@functools.lru_cache(maxsize=8)
def _load_key(path: Path, mtime: float, size: int, kids: frozenset[str], thumbprints: frozenset[str]) -> jwk.JWK:
    """Cached per (path, mtime, size, pins): a changed file is a new key."""
    return load_d1_encryption_key(path, allowed_kids=kids, allowed_thumbprints=thumbprints)


class ClearTrackDataRefused(RuntimeError):
    """The program places track data in clear (``interface.trackDataPlacement``: ``clear``),
    outside the development setting that allows it; nothing was sent anywhere."""


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
        issuance=order.services.issuance,
        priority=order.services.priority,
    )


def _search_attributes(*pairs: tuple[SearchAttributeKey[str], str | None]) -> TypedSearchAttributes:
    """The keys with a value (an absent consumer or group id is no attribute)."""
    return TypedSearchAttributes([SearchAttributePair(key, value) for key, value in pairs if value])


def _field_errors(issues: list[Issue]) -> list[FieldError]:
    return [FieldError(i.dotted("$"), i.reason) for i in issues]


def refuse_card_data_in(**values: str | None) -> None:
    """:class:`InvalidOrder` (JSON paths, never the values) when an identifier or a note the
    edge was given holds card data: ``refuse_card_data_in(issuerRequestId=rid, note=note)``."""
    issues = identifier_issues(values)
    if issues:
        raise InvalidOrder(_field_errors(issues))


# Stands in for the card data of an order the issuer encrypted itself, so that every other rule
# is checked by the one validation; it never reaches a body (d1_body drops cardData).
_PLACEHOLDER_CARD = {"pan": "4000000000000002", "exp": "0101"}
_CARD_PATHS = ("$.cardData", "$.trackData")
JWE_ALG, JWE_ENC = "ECDH-ES", "A256GCM"


def jwe_header_problems(token: Any, kid: str) -> list[str]:
    """Why ``token`` is not a compact JWE for D1's current key (read, never decrypted)."""
    if not isinstance(token, str) or token.count(".") != 4 or len(token) > 65_536:
        return ["must be a compact JWE (five base64url parts)"]
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "=="))
    except (ValueError, binascii.Error):
        return ["must be a compact JWE: its protected header is not base64url JSON"]
    if not isinstance(header, dict):
        return ["must be a compact JWE: its protected header is not a JSON object"]
    problems = []
    if header.get("alg") != JWE_ALG:
        problems.append(f"the JWE header's alg must be {JWE_ALG}")
    if header.get("enc") != JWE_ENC:
        problems.append(f"the JWE header's enc must be {JWE_ENC}")
    if header.get("kid") != kid:
        problems.append(f"the JWE header's kid must name D1's current key ({kid})")
    return problems


@dataclass(frozen=True, kw_only=True)
class OrderEdge:
    """Validate, encrypt for D1, check, and build the workflow input for one order at a time."""

    program_file: Path
    encryption_key: KeyFile | jwk.JWK
    expiry_format: str | None = None
    # Development only (D1_DEV_ALLOW_CLEAR_TRACK_DATA): tracks in clear in the workflow input.
    allow_clear_track_data: bool = False

    def __post_init__(self) -> None:
        if self.allow_clear_track_data:
            log.warning(
                "D1_DEV_ALLOW_CLEAR_TRACK_DATA is on: a program with trackDataPlacement=clear puts full track "
                "data into Temporal in clear. DEVELOPMENT ONLY, never with real cards"
            )

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> OrderEdge:
        """From ``D1_PROGRAM_FILE``, ``D1_EXPIRY_FORMAT``, ``D1_ENCRYPTION_PUBLIC_KEY_FILE`` (pinned by
        ``D1_ENCRYPTION_KEY_KIDS`` / ``_THUMBPRINTS``) and ``D1_DEV_ALLOW_CLEAR_TRACK_DATA``."""
        from settings import D1ClientSettings

        s = settings or D1ClientSettings()
        key = KeyFile(
            s.encryption_public_key_file,
            kids=frozenset(s.encryption_key_kids),
            thumbprints=frozenset(s.encryption_key_thumbprints),
        )
        return cls(
            program_file=s.program_file,
            encryption_key=key,
            expiry_format=s.expiry_format,
            allow_clear_track_data=s.dev_allow_clear_track_data,
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

    def current_kid(self) -> str:
        return str(self._key().get("kid"))

    def _key(self) -> jwk.JWK:
        return self.encryption_key.current() if isinstance(self.encryption_key, KeyFile) else self.encryption_key

    def prepare_encrypted(self, raw: Mapping[str, Any], *, timing: OrderTiming) -> PreparedOrder:
        """An order whose card data the issuer encrypted for D1 itself (``encryptedData``: a compact
        JWE for D1's current key, ECDH-ES + A256GCM; its header is checked, it is never decrypted).
        Every other rule applies as in :meth:`prepare`; :class:`InvalidOrder` otherwise."""
        token = raw.get("encryptedData")
        errors = [FieldError("$.encryptedData", p) for p in jwe_header_problems(token, self.current_kid())]
        for member in ("cardData", "trackData"):
            if member in raw:
                errors.append(FieldError(f"$.{member}", "must be absent when encryptedData is given"))
        rest = {k: v for k, v in raw.items() if k not in ("encryptedData", "cardData", "trackData")}
        checked = check_order(
            {**rest, "cardData": _PLACEHOLDER_CARD},
            program=self.program,
            unknown_fields="error",
            expiry_format=self.expiry_format,
        )
        errors += [e for e in checked.errors if not e.path.startswith(_CARD_PATHS)]
        if errors:
            raise InvalidOrder(errors, checked.warnings)
        order = parse_card_order({**rest, "cardData": _PLACEHOLDER_CARD})
        body = order.d1_body(str(token))
        leaks = card_data_issues(body)
        if leaks:
            raise InvalidOrder(_field_errors(leaks), checked.warnings)
        ref = order_ref(order).model_copy(update={"masked_pan": None})
        return self._prepared(order, ref, body, self.current_kid(), timing, tuple(checked.warnings))

    def _encrypt(self, order: CardOrder, timing: OrderTiming, warnings: tuple[FieldWarning, ...]) -> PreparedOrder:
        program = self.program
        key = self._key()
        # Where the tracks travel is the program's (d1/assumptions.py); encrypted by default.
        track_clear = program.interface.trackDataPlacement == "clear"
        if track_clear and not self.allow_clear_track_data:
            raise ClearTrackDataRefused(
                f"the program {self.program_file} places track data in clear (interface.trackDataPlacement), "
                "which would put full track data into Temporal: refused outside development "
                "(D1_DEV_ALLOW_CLEAR_TRACK_DATA); ask Thales whether D1 takes trackData inside encryptedData"
            )
        plaintext = order.sensitive_plaintext(include_tracks=not track_clear)
        body = order.d1_body(encrypt_for_d1(plaintext, key), tracks_in_clear=track_clear)
        clear_members = frozenset({"trackData"}) if track_clear else frozenset()
        leaks = card_data_issues(body, clear_members=clear_members)
        if leaks:
            raise InvalidOrder(_field_errors(leaks), list(warnings))
        return self._prepared(order, order_ref(order), body, str(key.get("kid")), timing, warnings)

    def _prepared(
        self,
        order: CardOrder,
        ref: OrderRef,
        body: dict[str, Any],
        kid: str,
        timing: OrderTiming,
        warnings: tuple[FieldWarning, ...],
    ) -> PreparedOrder:
        return PreparedOrder(
            workflow_id=api.workflow_id(order.issuerId, order.issuerRequestId),
            input=CardOrderInput(
                ref=ref,
                timing=timing,
                submission=D1Submission(body=body, encryption_kid=kid),
                approvals=approval_policy(self.program),
            ),
            search_attributes=TypedSearchAttributes(
                [
                    *_search_attributes(
                        (sa.ISSUER_ID, order.issuerId),
                        (sa.CARD_ID, order.cardId),
                        (sa.ISSUER_REQUEST_ID, order.issuerRequestId),
                        (sa.CONSUMER_ID, order.consumerId),
                        (sa.GROUP_ID, ref.group_id),
                    ),
                    # The service's labels from the start: the daily report counts by them.
                    SearchAttributePair(
                        sa.SERVICE_LABELS, sa.service_labels(ref.card_product_id, ref.issuance, ref.priority)
                    ),
                ]
            ),
            summary=f"Card {order.cardId} · request {order.issuerRequestId}",
            details=(
                f"Issuer {order.issuerId}, product {order.cardProductId}, channel {order.distributionChannel}, "
                f"PAN {ref.masked_pan or 'encrypted by the issuer'}"
            ),
            warnings=warnings,
            d1_body_digest=body_digest(body),
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
        issues += identifier_issues({"issuerId": issuer_id, "cardId": card_id})
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
