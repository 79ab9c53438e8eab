"""Request validation as D1 would do it: the first problem found, as ``{"errorCode", "error"}``.

The emulator reads the contract from :mod:`d1` itself (the channel's request model, the
cross-field rules, the program configuration) and never calls the issuer side's
validation: it stands in for a remote party that has its own reading of the contract.
D1 reports the first field in error (errors.md §2), so this module stops at the first
:class:`d1.issues.Issue` and answers with the errorCode of its kind (``ISSUE_CODES``) and
``error = "<json path>: <reason>"``. Unknown members are accepted (D1's compatibility
policy tolerates additions).

The text is built from the error location and a fixed reason only; the ``d1`` models
hide input values in their errors and this module never reads ``input``, so a submitted
PAN (or any other value) can never be echoed back or logged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from d1.issues import Issue, issues_from_validation_error
from d1.order import (
    D1OrderRequest,
    PullAndChangeRequest,
    body_issues,
    d1_order_model,
    pull_and_change_issues,
)
from d1.program import ExpiryFormat, Program
from emulator.error_codes import ISSUE_CODES, D1Error, ErrorCode

_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 _.,:;'()\[\]{}^$*+?|\\/=<>@#%!\"-]")
# A JSON member name is client-chosen text: only plain identifiers are repeated back.
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Members that would mean clear card data travels outside encryptedData.
CLEAR_CARD_DATA_MEMBERS = ("pan", "exp", "cvv2", "cvv1", "pvv", "cardData")
ENCRYPTED = "encryptedData"


def json_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """``("shipment", "deliveryAddress", "countryCode")`` → ``shipment.deliveryAddress.countryCode``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = part if _PLAIN_NAME.match(part) else "<member>"
            path = f"{path}.{name}" if path else name
    return path or "$"


def _reason(message: str) -> str:
    return _SAFE_TEXT.sub("", message)[:240]


def issue_error(issue: Issue, prefix: str = "") -> D1Error:
    """One issue as D1's 400 answer; ``error`` starts with the field's JSON path."""
    return D1Error(ISSUE_CODES[issue.kind], f"{json_path(issue.path, prefix)}: {_reason(issue.reason)}")


def first_error(issues: Sequence[Issue], prefix: str = "") -> D1Error | None:
    """The first issue as D1's answer (unknown members in card data count: they would be lost)."""
    return issue_error(issues[0], prefix) if issues else None


def to_d1_error(exc: ValidationError, prefix: str = "") -> D1Error:
    """The first error of ``exc`` as a 400 D1Error naming the field's JSON path."""
    error = first_error(issues_from_validation_error(exc), prefix)
    return error or D1Error(ErrorCode.FIELD_INVALID_FORMAT, f"{prefix or '$'}: invalid")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "$: body is not valid JSON") from None
    if not isinstance(body, dict):
        raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, "$: body must be a JSON object")
    return body


class RequestValidator:
    """The program configuration D1 holds for this issuer, and the checks that use it."""

    def __init__(self, program: Program, expiry_format: ExpiryFormat | None = None) -> None:
        self.program = program
        self.expiry_format: ExpiryFormat = expiry_format or program.cardData.expiryFormat

    def order_body(self, raw: bytes) -> tuple[D1OrderRequest, dict[str, Any]]:
        """Structure (the channel's model), cross-field rules, program rules: first problem wins.
        Returns the request and the raw JSON object (for the rules that need the card data)."""
        body = _json_object(raw)
        for member in CLEAR_CARD_DATA_MEMBERS:
            if member in body:
                raise D1Error(ErrorCode.FIELD_INVALID_FORMAT, f"{member}: card data must travel inside encryptedData")
        try:
            request = d1_order_model(body).model_validate(body)
        except ValidationError as exc:
            raise to_d1_error(exc) from None
        error = first_error(body_issues(body)) or first_error(self.program.body_issues(body))
        if error is not None:
            raise error
        return request, body

    def card(self, card: Mapping[str, Any], track: Mapping[str, Any] | None, body: Mapping[str, Any]) -> None:
        """Rules on the decrypted card data (and the plain ``trackData`` when sent outside the JWE)."""
        plain_track = body.get("trackData") if isinstance(body.get("trackData"), Mapping) else None
        track_path = (ENCRYPTED, "trackData") if track is not None else ("trackData",)
        error = first_error(
            self.program.card_issues(
                card,
                track if track is not None else plain_track,
                card_path=(ENCRYPTED,),
                track_path=track_path,
                expiry_format=self.expiry_format,
            )
        ) or first_error(body_issues(body, card, card_path=(ENCRYPTED,)))
        if error is not None:
            raise error

    def pull_and_change(self, raw: bytes) -> PullAndChangeRequest:
        body = _json_object(raw)
        try:
            request = PullAndChangeRequest.model_validate(body)
        except ValidationError as exc:
            raise to_d1_error(exc) from None
        address = body.get("newDeliveryAddress")
        issues = pull_and_change_issues(body)
        if isinstance(address, Mapping):
            issues += self.program.address_issues(address, ("newDeliveryAddress",))
        error = first_error(issues)
        if error is not None:
            raise error
        return request


__all__ = ["RequestValidator", "first_error", "issue_error", "json_path", "to_d1_error"]
