"""Every error the emulator answers or notifies, in one table, each marked D or G.

**D** = a code D1 documents: the only error table readable for physical issuance (the
tracking hub's Track Card, in the same OpenAPI file as the card order) names
``FIELD_INVALID_FORMAT`` and ``FIELD_INVALID_VALUE`` ("field in error (first found)"),
``CRYPTO_ERROR`` (decryption of the encrypted data failed), ``PARSING_ERROR`` (the encrypted
data is not a valid JSON string) for 400, and ``AUTHORIZER_UNAUTHORIZED`` for 401.
**G** = our guess, for situations D1 names no code for (409, 403, 404, the token endpoint,
asynchronous failures); replace them here once Thales provides the real list.

Body (D1's convention): ``{"errorCode", "error"}`` where ``error`` names what is in error,
never a value (it could be card data): the JSON path of a body field (``$.services.issuance``,
``$.encryptedData.pan``, ``$.cards[2].cardId``), a path parameter by its name (``cardId``),
else a fixed text. The emulator adds ``reason``, a short human explanation (G: D1 documents
no such member; clients must not rely on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from d1.issues import NOT_ALLOWED_ERROR, IssueKind

Source = Literal["D", "G"]


class ErrorCode(StrEnum):
    # Documented by D1 (Track Card error table).
    FIELD_INVALID_FORMAT = "FIELD_INVALID_FORMAT"
    FIELD_INVALID_VALUE = "FIELD_INVALID_VALUE"
    CRYPTO_ERROR = "CRYPTO_ERROR"
    PARSING_ERROR = "PARSING_ERROR"
    AUTHORIZER_UNAUTHORIZED = "AUTHORIZER_UNAUTHORIZED"
    # Token endpoint (G: RFC 6749 §5.2 names in D1's errorCode/error convention; D1 documents
    # a 400 without a body schema).
    INVALID_REQUEST = "invalid_request"
    INVALID_GRANT = "invalid_grant"
    # Banking API answers D1 names no code for (G).
    FORBIDDEN = "FORBIDDEN"
    CARD_ALREADY_ORDERED = "CARD_ALREADY_ORDERED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    SERVER_ERROR = "SERVER_ERROR"
    # Asynchronous failures reported in notifications, never HTTP answers (G: D1 documents
    # errorCode/error on a FAILED operation but no value).
    DATA_REJECTED = "EMU_DATA_REJECTED"
    PRODUCTION_FAILED = "EMU_PRODUCTION_FAILED"
    UPDATE_REFUSED = "EMU_UPDATE_REFUSED"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    # None: never an HTTP answer, only reported asynchronously in a notification.
    http_status: int | None
    source: Source
    # The ``error`` member when the answer names no field.
    default_error: str


ERRORS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.FIELD_INVALID_FORMAT: ErrorSpec(400, "D", "$"),
    ErrorCode.FIELD_INVALID_VALUE: ErrorSpec(400, "D", "$"),
    ErrorCode.CRYPTO_ERROR: ErrorSpec(400, "D", "$.encryptedData"),
    ErrorCode.PARSING_ERROR: ErrorSpec(400, "D", "$.encryptedData"),
    ErrorCode.AUTHORIZER_UNAUTHORIZED: ErrorSpec(401, "D", "The provided Authorization header is missing or invalid"),
    ErrorCode.INVALID_REQUEST: ErrorSpec(400, "G", "The token request is malformed"),
    ErrorCode.INVALID_GRANT: ErrorSpec(400, "G", "The assertion is not valid"),
    ErrorCode.FORBIDDEN: ErrorSpec(403, "G", "issuerId"),
    ErrorCode.CARD_ALREADY_ORDERED: ErrorSpec(409, "G", "cardId"),
    ErrorCode.NOT_FOUND: ErrorSpec(404, "G", "Resource not found"),
    ErrorCode.METHOD_NOT_ALLOWED: ErrorSpec(405, "G", "Method not allowed"),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorSpec(413, "G", "The request body is too large"),
    ErrorCode.SERVER_ERROR: ErrorSpec(500, "G", "Internal server error"),
    ErrorCode.DATA_REJECTED: ErrorSpec(None, "G", "Personalization data rejected"),
    ErrorCode.PRODUCTION_FAILED: ErrorSpec(None, "G", "Card personalization failed"),
    ErrorCode.UPDATE_REFUSED: ErrorSpec(None, "G", "Pull and change refused by the personalization center"),
}

# Fixed reasons of the answers that name a parameter.
DEFAULT_REASONS: dict[ErrorCode, str] = {
    ErrorCode.FORBIDDEN: "the access token was not issued for this issuer",
    ErrorCode.CARD_ALREADY_ORDERED: "an order for this card is still open under another issuerRequestId",
}

# Which documented code answers each kind of validation problem (d1/issues.py). The codes
# are D1's; which kind maps to which is our reading (G): a missing member or a value of the
# wrong type, pattern, length or form is a format error; a well-formed value that is not
# allowed (not configured for the program, not in the enumeration, not in this
# combination) is a value error.
ISSUE_CODES: dict[IssueKind, ErrorCode] = {
    IssueKind.MISSING: ErrorCode.FIELD_INVALID_FORMAT,
    IssueKind.INVALID: ErrorCode.FIELD_INVALID_FORMAT,
    IssueKind.NOT_ALLOWED: ErrorCode.FIELD_INVALID_VALUE,
    IssueKind.UNKNOWN_PRODUCT: ErrorCode.FIELD_INVALID_VALUE,
    IssueKind.UNKNOWN_ID: ErrorCode.FIELD_INVALID_VALUE,
    IssueKind.COUNTRY_NOT_ALLOWED: ErrorCode.FIELD_INVALID_VALUE,
    # D1 tolerates unknown members (compatibility policy); listed for completeness.
    IssueKind.UNKNOWN_FIELD: ErrorCode.FIELD_INVALID_FORMAT,
    IssueKind.DEPRECATED: ErrorCode.FIELD_INVALID_FORMAT,
}
# Pydantic error types of a well-formed but disallowed value (not one of the enumerated
# values, a member this channel does not allow): FIELD_INVALID_VALUE rather than the kind's
# code. Rules on the value's own form (Luhn check digit, assigned ISO codes, track layout)
# stay format errors.
VALUE_ERROR_TYPES: frozenset[str] = frozenset({"literal_error", "enum", NOT_ALLOWED_ERROR})


class D1Error(Exception):
    """An error answered to the caller as ``{"errorCode", "error"[, "reason"]}``.

    ``error`` and ``reason`` must be built from field names and fixed texts only, never
    from input values, because they are both sent back and logged.
    """

    def __init__(
        self, code: ErrorCode, error: str | None = None, *, reason: str | None = None, http_status: int | None = None
    ):
        self.code = code
        spec = ERRORS[code]
        self.http_status = http_status or spec.http_status or 500
        self.error = error if error is not None else spec.default_error
        self.reason = reason if reason is not None else DEFAULT_REASONS.get(code)
        super().__init__(f"{code.value}: {self.error}" + (f" ({self.reason})" if self.reason else ""))

    def body(self) -> dict[str, str]:
        body = {"errorCode": self.code.value, "error": self.error}
        if self.reason:
            body["reason"] = self.reason
        return body
