"""Every error the emulator answers, in one table.

D1 does not publish the card-order error codes (errors.md §2, §5): the names below for
the order endpoint are our guesses and the token ones follow RFC 6749. Keeping them in
one place means one edit once Thales provides the real list. The ``error`` text the
emulator adds names a field or a reason, never a submitted value (it could be card data).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from d1.issues import IssueKind


class ErrorCode(StrEnum):
    # Token endpoint (RFC 6749 §5.2 names, carried in D1's errorCode/error convention).
    INVALID_REQUEST = "invalid_request"
    INVALID_GRANT = "invalid_grant"
    # Authentication / authorisation on the banking API.
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    # Request validation (400).
    FIELD_INVALID_FORMAT = "FIELD_INVALID_FORMAT"
    MANDATORY_FIELD_MISSING = "MANDATORY_FIELD_MISSING"
    INVALID_ENCRYPTED_DATA = "INVALID_ENCRYPTED_DATA"
    INVALID_FIELD_COMBINATION = "INVALID_FIELD_COMBINATION"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    # Program configuration (onboarding reference data, card-order.md §18).
    UNKNOWN_CARD_PRODUCT = "UNKNOWN_CARD_PRODUCT"
    UNKNOWN_SERVICE_ID = "UNKNOWN_SERVICE_ID"
    COUNTRY_NOT_ALLOWED = "COUNTRY_NOT_ALLOWED"
    # Business conflicts.
    CARD_ALREADY_ORDERED = "CARD_ALREADY_ORDERED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    # Injected faults and unexpected failures.
    SERVER_ERROR = "SERVER_ERROR"
    # Asynchronous failures reported in notifications (never HTTP answers).
    DATA_REJECTED = "EMU_DATA_REJECTED"
    PRODUCTION_FAILED = "EMU_PRODUCTION_FAILED"
    UPDATE_REFUSED = "EMU_UPDATE_REFUSED"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    # None: never an HTTP answer, only reported asynchronously in a notification.
    http_status: int | None
    default_message: str


ERRORS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.INVALID_REQUEST: ErrorSpec(400, "The token request is malformed"),
    ErrorCode.INVALID_GRANT: ErrorSpec(400, "The assertion is not valid"),
    ErrorCode.UNAUTHORIZED: ErrorSpec(401, "The provided Authorization header is missing or invalid"),
    ErrorCode.FORBIDDEN: ErrorSpec(403, "issuerId: the access token was not issued for this issuer"),
    ErrorCode.FIELD_INVALID_FORMAT: ErrorSpec(400, "A field has an invalid format"),
    ErrorCode.MANDATORY_FIELD_MISSING: ErrorSpec(400, "A mandatory field is missing"),
    ErrorCode.INVALID_ENCRYPTED_DATA: ErrorSpec(400, "encryptedData: cannot be decrypted"),
    ErrorCode.INVALID_FIELD_COMBINATION: ErrorSpec(400, "A field is not allowed in this combination"),
    ErrorCode.UNKNOWN_CARD_PRODUCT: ErrorSpec(400, "cardProductId: not a card product of this program"),
    ErrorCode.UNKNOWN_SERVICE_ID: ErrorSpec(400, "An identifier is not configured for this program"),
    ErrorCode.COUNTRY_NOT_ALLOWED: ErrorSpec(400, "The destination country is not allowed for this program"),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorSpec(413, "The request body is too large"),
    ErrorCode.CARD_ALREADY_ORDERED: ErrorSpec(
        409, "cardId: an order for this card is still open under another issuerRequestId"
    ),
    ErrorCode.NOT_FOUND: ErrorSpec(404, "Resource not found"),
    ErrorCode.METHOD_NOT_ALLOWED: ErrorSpec(405, "Method not allowed"),
    ErrorCode.SERVER_ERROR: ErrorSpec(500, "Internal server error"),
    ErrorCode.DATA_REJECTED: ErrorSpec(None, "Personalization data rejected"),
    ErrorCode.PRODUCTION_FAILED: ErrorSpec(None, "Card personalization failed"),
    ErrorCode.UPDATE_REFUSED: ErrorSpec(None, "Pull and change refused by the personalization center"),
}

# Which errorCode answers each kind of validation problem found in a request (d1/issues.py).
ISSUE_CODES: dict[IssueKind, ErrorCode] = {
    IssueKind.MISSING: ErrorCode.MANDATORY_FIELD_MISSING,
    IssueKind.INVALID: ErrorCode.FIELD_INVALID_FORMAT,
    IssueKind.NOT_ALLOWED: ErrorCode.INVALID_FIELD_COMBINATION,
    IssueKind.UNKNOWN_PRODUCT: ErrorCode.UNKNOWN_CARD_PRODUCT,
    IssueKind.UNKNOWN_ID: ErrorCode.UNKNOWN_SERVICE_ID,
    IssueKind.COUNTRY_NOT_ALLOWED: ErrorCode.COUNTRY_NOT_ALLOWED,
    # D1 tolerates unknown members (compatibility policy); listed for completeness.
    IssueKind.UNKNOWN_FIELD: ErrorCode.FIELD_INVALID_FORMAT,
    IssueKind.DEPRECATED: ErrorCode.FIELD_INVALID_FORMAT,
}


class D1Error(Exception):
    """An error answered to the caller as ``{"errorCode", "error"}``.

    ``detail`` must be built from field names and fixed reasons only, never from input
    values, because it is both sent back and logged.
    """

    def __init__(self, code: ErrorCode, detail: str | None = None, *, http_status: int | None = None):
        self.code = code
        spec = ERRORS[code]
        self.http_status = http_status or spec.http_status or 500
        self.detail = detail if detail is not None else spec.default_message
        super().__init__(f"{code.value}: {self.detail}")

    def body(self) -> dict[str, str]:
        return {"errorCode": self.code.value, "error": self.detail}
