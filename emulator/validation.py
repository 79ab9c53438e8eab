"""Request validation as D1 would do it: the first problem found, as ``{"errorCode", "error"}``.

The emulator reads the contract from :mod:`d1` itself (the models, the cross-field rules, the
program configuration) with D1's own reading of the bodies (:mod:`emulator.bodies`)
and never calls the issuer side's validation: it stands in for a remote party that has its
own reading of the contract. D1 reports the first field in error, so this module stops at
the first :class:`d1.issues.Issue` and answers with the documented code of its kind
(``emulator/error_codes.py``), ``error`` = the field's JSON path (``$.services.issuance``)
and ``reason`` = a fixed explanation. Unknown members are accepted (D1's compatibility
policy tolerates additions), except inside the encrypted card data.

The text is built from the error location and a fixed reason only; the ``d1`` models
hide input values in their errors and this module never reads ``input``, so a submitted
PAN (or any other value) can never be echoed back or logged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from d1.assumptions import D1Interface
from d1.issues import Issue, Path, issues_from_validation_error
from d1.program import ExpiryFormat, Program
from d1.rules import body_issues, card_issues
from d1.tracking import track_card_model
from emulator.bodies import (
    D1CardFields,
    PullAndChangeRequest,
    batch_card_model,
    cards_request_issues,
    order_body_model,
    pull_and_change_issues,
)
from emulator.error_codes import ISSUE_CODES, VALUE_ERROR_TYPES, D1Error, ErrorCode

_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 _.,:;'()\[\]{}^$*+?|\\/=<>@#%!\"-]")
# A JSON member name is client-chosen text: only plain identifiers are repeated back.
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Members that would mean clear card data travels outside encryptedData.
CLEAR_CARD_DATA_MEMBERS = ("pan", "exp", "cvv2", "cvv1", "pvv", "cardData")
ENCRYPTED = "encryptedData"
TRACK = "trackData"

M = TypeVar("M", bound=BaseModel)


def json_path(loc: Sequence[int | str], prefix: Sequence[int | str] = ()) -> str:
    """``("shipment", "deliveryAddress", "countryCode")`` → ``$.shipment.deliveryAddress.countryCode``."""
    path = "$"
    for part in (*prefix, *loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += "." + (part if _PLAIN_NAME.match(part) else "<member>")
    return path


def _reason(message: str) -> str:
    return _SAFE_TEXT.sub("", message)[:240]


def field_error(code: ErrorCode, loc: Sequence[int | str], reason: str, prefix: Path = ()) -> D1Error:
    return D1Error(code, json_path(loc, prefix), reason=_reason(reason))


def issue_error(issue: Issue, prefix: Path = (), code: ErrorCode | None = None) -> D1Error:
    """One issue as D1's 400 answer: ``error`` is the field's JSON path."""
    return field_error(code or ISSUE_CODES[issue.kind], issue.path, issue.reason, prefix)


def first_error(issues: Sequence[Issue], prefix: Path = ()) -> D1Error | None:
    """The first issue as D1's answer (unknown members in card data count: they would be lost)."""
    return issue_error(issues[0], prefix) if issues else None


def to_d1_error(exc: ValidationError, prefix: Path = ()) -> D1Error:
    """The first error of ``exc`` as a 400 D1Error naming the field's JSON path."""
    issues = issues_from_validation_error(exc)
    if not issues:
        return D1Error(ErrorCode.FIELD_INVALID_FORMAT, json_path((), prefix), reason="invalid")
    first_type = exc.errors(include_input=False, include_url=False)[0]["type"]
    code = ErrorCode.FIELD_INVALID_VALUE if first_type in VALUE_ERROR_TYPES else None
    return issue_error(issues[0], prefix, code)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "$", reason="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "$", reason="the body must be a JSON object")
    return body


def _validated(model: type[M], body: Mapping[str, Any], prefix: Path) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise to_d1_error(exc, prefix) from None


class RequestValidator:
    """The program configuration D1 holds for this issuer, and the checks that use it."""

    def __init__(self, program: Program, expiry_format: ExpiryFormat | None = None) -> None:
        self.program = program
        self.interface: D1Interface = program.interface
        self.expiry_format: ExpiryFormat = expiry_format or program.cardData.expiryFormat

    # ------------------------------------------------------------------ card orders

    def order_body(self, raw: bytes) -> tuple[D1CardFields, dict[str, Any]]:
        """A single order: structure (the channel's model), cross-field rules, program rules,
        first problem wins. Returns the request and the raw JSON object (for the card rules)."""
        body = parse_json_object(raw)
        return self.order_fields(body, single=True), body

    def batch_envelope(self, raw: bytes) -> list[dict[str, Any]]:
        """The batch body's ``cards`` (1..batchMaxCards objects), else a 400 for the whole request."""
        body = parse_json_object(raw)
        error = first_error(cards_request_issues(body, self.interface.batchMaxCards))
        if error is not None:
            raise error
        cards: list[dict[str, Any]] = body["cards"]
        return cards

    def order_fields(self, body: dict[str, Any], *, single: bool, prefix: Path = ()) -> D1CardFields:
        """One card's order (a single body, or a batch item at ``prefix``)."""
        for member in CLEAR_CARD_DATA_MEMBERS:
            if member in body:
                raise field_error(
                    ErrorCode.FIELD_INVALID_FORMAT, (member,), "card data must travel inside encryptedData", prefix
                )
        model = order_body_model(body) if single else batch_card_model(body)
        request = _validated(model, body, prefix)
        error = first_error(body_issues(body), prefix) or first_error(self.program.body_issues(body), prefix)
        if error is not None:
            raise error
        if self.interface.trackDataPlacement == "encrypted" and body.get(TRACK) is not None:
            raise field_error(
                ErrorCode.FIELD_INVALID_VALUE,
                (TRACK,),
                "travels inside encryptedData for this program (interface.trackDataPlacement)",
                prefix,
            )
        return request

    def card(
        self, card: Mapping[str, Any], track: Mapping[str, Any] | None, body: Mapping[str, Any], prefix: Path = ()
    ) -> None:
        """Rules on the decrypted card data (and the clear ``trackData`` when sent outside the JWE)."""
        if track is not None and self.interface.trackDataPlacement == "clear":
            raise field_error(
                ErrorCode.FIELD_INVALID_VALUE,
                (ENCRYPTED, TRACK),
                "travels as a top-level member for this program (interface.trackDataPlacement)",
                prefix,
            )
        plain_track = body.get(TRACK) if isinstance(body.get(TRACK), Mapping) else None
        track_path = (ENCRYPTED, TRACK) if track is not None else (TRACK,)
        issues = self.program.card_issues(card, (ENCRYPTED,))
        issues += card_issues(
            card,
            track if track is not None else plain_track,
            expiry_format=self.expiry_format,
            card_path=(ENCRYPTED,),
            track_path=track_path,
        )
        issues += body_issues(body, card, card_path=(ENCRYPTED,))
        error = first_error(issues, prefix)
        if error is not None:
            raise error

    # ------------------------------------------------------------------ other operations

    def pull_and_change(self, raw: bytes) -> PullAndChangeRequest:
        body = parse_json_object(raw)
        request = _validated(PullAndChangeRequest, body, ())
        address = body.get("newDeliveryAddress")
        issues = pull_and_change_issues(body)
        if isinstance(address, Mapping):
            issues += self.program.address_issues(address, ("newDeliveryAddress",))
        error = first_error(issues)
        if error is not None:
            raise error
        return request

    def track_card(self, raw: bytes) -> BaseModel:
        """A Track Card body: its ``trackingType``'s model (d1/tracking.py)."""
        body = parse_json_object(raw)
        return _validated(track_card_model(body), body, ())


__all__ = ["RequestValidator", "field_error", "first_error", "issue_error", "json_path", "to_d1_error"]
