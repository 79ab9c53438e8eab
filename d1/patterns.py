"""The formats and closed vocabularies of D1's card order: every pattern with its rule in
plain words (registered with :func:`d1.issues.describe_pattern` for the error messages), the
magnetic track layouts, and the enumerations shared by the models, the rules and the emulator.

Where D1 documents a format only by example or not at all, the choice made here is marked
GUESS (see docs/d1/card-order.md and docs/d1/assumptions.md).
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from d1.issues import describe_pattern

# ------------------------------------------------------------------ identifier patterns

CARD_ID_PATTERN = describe_pattern(r"^[A-Za-z0-9_-]{1,48}$", "must be 1-48 characters: letters, digits, '_' or '-'")
CONSUMER_ID_PATTERN = describe_pattern(r"^[A-Za-z0-9_-]{1,64}$", "must be 1-64 characters: letters, digits, '_' or '-'")
CARD_PRODUCT_ID_PATTERN = CARD_ID_PATTERN
# issuerRequestId's format is not documented; we use the D1 identifier alphabet plus '.'
# and ':' (it is also our idempotency key and part of the Temporal workflow id).
ISSUER_REQUEST_ID_PATTERN = describe_pattern(
    r"^[A-Za-z0-9_.:-]{1,64}$", "must be 1-64 characters: letters, digits, '_', '.', ':' or '-'"
)
# Identifiers configured at onboarding (delivery methods, carrier templates, packaging,
# inserts, image ids, payment-application configs, priorities): GUESS of their alphabet.
ONBOARDING_ID_PATTERN = describe_pattern(
    r"^[A-Za-z0-9_.-]{1,64}$", "must be an identifier of 1-64 characters: letters, digits, '_', '.' or '-'"
)
GROUP_ID_PATTERN = ISSUER_REQUEST_ID_PATTERN
PERSO_STATION_PATTERN = ONBOARDING_ID_PATTERN
# Key indexes are one byte in EMV key management: GUESS two hex digits, as in every example ("01").
KEY_INDEX_PATTERN = describe_pattern(r"^[0-9A-Fa-f]{2}$", "must be a key index of two hexadecimal digits, e.g. 01")
COUNTRY_CODE_PATTERN = describe_pattern(
    r"^[A-Z]{2}$", "must be an ISO 3166-1 alpha-2 country code in capitals, e.g. US"
)
LANGUAGE_PATTERN = describe_pattern(r"^[a-z]{2}$", "must be an ISO 639-1 language code in lower case, e.g. en")
E164_PATTERN = describe_pattern(
    r"^\+[1-9][0-9]{1,14}$",
    "must be an international number in E.164 form: '+', country code, number, e.g. +12125550100",
)
ZIP_CODE_PATTERN = describe_pattern(
    r"^[A-Za-z0-9][A-Za-z0-9 -]{0,15}$", "must be a postal code of 1-16 letters, digits, spaces or hyphens"
)
# Printable text without control characters (address lines, custom lines).
TEXT_PATTERN = describe_pattern(r"^[^\x00-\x1f\x7f]+$", "must be printable text (no control characters)")
MEMBER_ID_PATTERN = describe_pattern(
    r"^[A-Za-z0-9 ._/+$%-]{1,32}$",
    "must be 1-32 characters printable as a barcode: letters, digits, space or . _ / + $ % -",
)

# ------------------------------------------------------------------ card data patterns

PAN_PATTERN = describe_pattern(r"^[0-9]{10,19}$", "must be 10-19 digits")
EXP_PATTERN = describe_pattern(r"^[0-9]{4}$", "must be 4 digits (YYMM or MMYY, per the program)")
CVV1_PATTERN = describe_pattern(r"^[0-9]{3}$", "must be 3 digits")
CVV2_PATTERN = describe_pattern(r"^[0-9]{3,4}$", "must be 3 or 4 digits")
PVV_PATTERN = describe_pattern(r"^[0-9]{4}$", "must be 4 digits")
PSN_PATTERN = describe_pattern(r"^[0-9]{2}$", "must be 2 digits, e.g. 00")
PAR_PATTERN = describe_pattern(r"^[A-Za-z0-9]{29}$", "must be a payment account reference of 29 letters or digits")
# Name as written on the card; the printable alphabet and length are program rules.
NAME_PATTERN = TEXT_PATTERN
# ISO/IEC 7813 track 1 name field: SURNAME/GIVEN NAMES (2-26 characters, capitals).
ENCODED_NAME_PATTERN = describe_pattern(
    r"^[A-Z0-9 .'-]+/[A-Z0-9 .'-]*$",
    "must be an ISO/IEC 7813 track 1 name: capitals, 'SURNAME/GIVEN NAMES', e.g. SAMPLE/JANE",
)

# ISO/IEC 7813 magnetic tracks, with or without start/end sentinels (and without LRC).
# Track 1 (format B): B PAN ^ NAME ^ YYMM SSS discretionary. Track 2: PAN = YYMM SSS discretionary.
# Track 3 (ISO 4909): digits and '=' separators.
_T1_CHARS = r"[ !\"#$&'()*+,./0-9:;<=>@A-Z\[\\\]_-]"
TRACK1_RE = re.compile(
    rf"^%?B(?P<pan>[0-9]{{1,19}})\^(?P<name>{_T1_CHARS}{{2,26}})\^(?P<exp>[0-9]{{4}})[0-9]{{3}}"
    rf"{_T1_CHARS}*\??$"
)
TRACK2_RE = re.compile(r"^;?(?P<pan>[0-9]{1,19})[=D](?P<exp>[0-9]{4})[0-9]{3}[0-9]*\??$")
# Each track's layout, and its rule in plain words for the error message.
TRACK_LAYOUTS: dict[str, tuple[re.Pattern[str], str]] = {
    "track1": (
        TRACK1_RE,
        "must be an ISO/IEC 7813 track 1 (format B): 'B', PAN, '^', name (2-26 capitals), '^', "
        "YYMM expiry, 3-digit service code, discretionary data; at most 79 characters",
    ),
    "track2": (
        TRACK2_RE,
        "must be an ISO/IEC 7813 track 2: PAN, '=', YYMM expiry, 3-digit service code, discretionary digits; "
        "at most 40 characters",
    ),
    "track3": (
        re.compile(r"^;?[0-9]{2}[0-9]{1,19}=[0-9=]*\??$"),
        "must be an ISO 4909 track 3: digits and '=' separators (format code, PAN, '=', ...); at most 107 characters",
    ),
}

NO_SHIPMENT = "NO_SHIPMENT"
NO_CARRIER = "NO_CARRIER"
NO_PACK = "NO_PACK"

DistributionChannel = Literal["THALES", "CENTRAL", "INSTANT"]
DEFAULT_CHANNEL: DistributionChannel = "THALES"
Issuance = Literal["CREATION", "RENEWAL", "REPLACEMENT"]
ShipmentType = Literal["INDIVIDUAL", "BULK"]
# Deprecated ``state``: only ACTIVE is documented (its default; docs/d1/card-order.md §17); INACTIVE is our reading.
CardState = Literal["ACTIVE", "INACTIVE"]
DEFAULT_CARD_STATE = "ACTIVE"

# Pull & change (docs/d1/card-order.md §14): the redirects need a new delivery address.
PullAndChangeType = Literal["CANCEL", "ACCELERATE", "REDIRECT", "ACCELERATE_AND_REDIRECT"]
PULL_AND_CHANGE_TYPES: tuple[str, ...] = get_args(PullAndChangeType)
REDIRECTING_TYPES: frozenset[str] = frozenset({"REDIRECT", "ACCELERATE_AND_REDIRECT"})
