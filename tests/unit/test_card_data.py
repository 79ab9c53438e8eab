"""One definition of card data (d1/card_data.py): what the card-data guard refuses to send,
the redaction layer masks, by name and by number."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from d1.card_data import holds_pan, is_card_data_name, luhn_valid, pan_spans
from d1.card_data_guard import card_data_issues
from security.redaction import MASK, redact_attributes, redact_mapping, redact_text

# Every name either side has ever known, and look-alikes that are not card data.
NAMES = [
    *("pan", "PAN", "primaryAccountNumber", "cardNumber", "card_number", "accountNumber", "d1.card.pan"),
    *("panSequenceNumber", "magStripe", "mag_stripe", "sensitiveData", "sensitivePlaintext", "cardData", "card-data"),
    *("exp", "expDate", "expMonth", "exp_year", "expiry", "expiryDt", "expiryDate", "expiration", "expirationYear"),
    *("cardExpiry", "cardExpiryDate", "cardExpirationDate", "EXPIRY_MONTH"),
    *("cvv", "cvv2", "CVV1", "cvvValue", "cvc", "cvc3", "cvn", "cvnumber", "cid", "csc", "cvd", "cav", "cav2"),
    *("cardCode", "securityCode", "security_code", "cardSecurityCode", "verificationValue", "paymentSecurityCode"),
    *("cardVerificationValue", "cardVerificationValue2", "card_verification_code", "cardVerificationNumber"),
    *("cardCvv", "cardCvv2", "customerCvc2", "pvv", "pin", "pinBlock", "pin_block"),
    *("track1", "track2", "track3", "tracks", "trackData", "track_data", "TRACK2"),
    # not card data
    *("pinMailer", "trackingNumber", "trackingType", "trackingUrl", "cardId", "consumerId", "expressCarrier"),
    *("cardProductId", "encryptedData", "maskedPan", "cidr", "panel", "expected", "services", "panorama", "name"),
    *("line1", "trace_id", "span_id", "workflow_id", "operationId", "issuerRequestId", "status", "expressDelivery"),
]


def _guard_refuses(name: str) -> bool:
    return card_data_issues({"shipment": {name: "x"}}) != []


def _redaction_masks(name: str) -> bool:
    """As a key, as a span attribute and as ``name=value`` in text."""
    return (
        redact_mapping({name: "8371"})[name] == MASK
        and redact_attributes({name: "8371"})[name] == MASK
        and redact_text(f"{name}=8371") == f"{name}={MASK}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_guard_refuses_exactly_the_names_redaction_masks_as_card_data(name: str) -> None:
    assert _guard_refuses(name) == _redaction_masks(name) == is_card_data_name(name)


def test_the_names_the_guard_and_redaction_used_to_disagree_on() -> None:
    for name in ("magStripe", "sensitiveData", "panSequenceNumber", "expiryDt", "cardCode", "paymentSecurityCode"):
        assert _guard_refuses(name) and _redaction_masks(name), name
        assert redact_text(f"{name}=8371") == f"{name}={MASK}"


_WORDS = ["pan", "cvv", "cvc2", "exp", "expiry", "track", "track2", "pin", "card", "data", "code", "security"]
_WORDS += ["verification", "value", "number", "id", "tracking", "mag", "stripe", "sensitive", "sequence", "x"]


@settings(max_examples=200)
@given(
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3),
    st.sampled_from(["", "_", "-"]),
    st.sampled_from([str.lower, str.upper, str.title]),
    st.sampled_from(["", "d1.", "card."]),
)
def test_any_name_is_classified_the_same_on_both_sides(words: list[str], sep: str, case: object, prefix: str) -> None:
    name = prefix + sep.join(case(w) for w in words)  # type: ignore[operator]
    assert _guard_refuses(name) == _redaction_masks(name) == is_card_data_name(name), name


def _pan(body: str) -> str:
    """``body`` and the check digit that makes it Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


PANS = st.builds(_pan, st.from_regex(r"[3-6][0-9]{14}", fullmatch=True))


@settings(max_examples=100)
@given(PANS, st.sampled_from([" ", "-", ".", "/"]))
def test_what_the_guard_refuses_as_a_number_redaction_masks(pan: str, sep: str) -> None:
    for written in (
        pan,
        sep.join(pan[i : i + 4] for i in range(0, 16, 4)),
        f"{pan[:4]}{sep}{pan[4:10]}{sep}{pan[10:]}",
    ):
        text = f"see <{written}> here"
        assert holds_pan(text) and pan_spans(text, strict=False)
        assert redact_text(text) == f"see <{pan[:4]}{'*' * 8}{pan[-4:]}> here"
