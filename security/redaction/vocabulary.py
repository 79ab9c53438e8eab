"""What a key, attribute or ``name=value`` name holds, for redaction.

Card data is what d1/card_data.py says it is (the card-data guard refuses the same names);
this module adds what only redaction cares about: credentials, names and addresses (PII),
and keys whose values are safe as they are (ciphertext, masked values, tracking ids).
"""

from __future__ import annotations

from enum import IntEnum

from d1.card_data import PAN_NAMES, is_card_data_name, normalized_name

_SECRET_NAMES = frozenset(
    """authorization accesstoken refreshtoken idtoken assertion clientsecret password secret apikey
    privatekey proxyauthorization cookie setcookie""".split()
)
_PII_NAMES = frozenset(
    """name secondname encodedname cardholdername firstname lastname fullname companyname line1 line2
    line3 addressline1 addressline2 zipcode postalcode postcode mobilephonenumber phonenumber phone
    email emailaddress dateofbirth""".split()
)
# Everything below these keys is PII.
_PII_SUBTREES = frozenset({"deliveryaddress", "individualaddress", "address", "billingaddress"})
# Ciphertext, masked values and ids (OpenTelemetry's trace and span ids, set by
# observability/logs.py): their values are not even checked for shapes.
_SAFE_NAMES = frozenset({"encrypteddata", "maskedpan", "trackingnumber", "trackingurl", "traceid", "spanid"})


class Kind(IntEnum):
    PLAIN = 0
    SAFE = 1
    PAN = 2  # masked by d1/masking.py
    CARD = 3  # any other card data, and everything below it: masked
    SECRET = 4
    PII = 5  # masked, and everything below it, unless the caller may see PII
    PII_SUBTREE = 6


def kind_of(name: str) -> Kind:
    """The one classification of mapping keys, span attribute names and ``key=value`` names."""
    n = normalized_name(name)
    if n in _SAFE_NAMES:
        return Kind.SAFE
    if n in PAN_NAMES:
        return Kind.PAN
    if is_card_data_name(n):
        return Kind.CARD
    if n in _SECRET_NAMES:
        return Kind.SECRET
    if n in _PII_NAMES:
        return Kind.PII
    if n in _PII_SUBTREES:
        return Kind.PII_SUBTREE
    return Kind.PLAIN
