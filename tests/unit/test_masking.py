"""The one masking rule (d1/masking.py): never more than the first 6 and the last 4 digits,
never more than half the digits, nothing at all of a value too short to be a PAN."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from d1.masking import MASK, mask_pan


@settings(max_examples=500, deadline=None)
@given(digits=st.integers(min_value=12, max_value=19).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)))
def test_a_masked_pan_shows_at_most_first_6_last_4_and_half(digits: str) -> None:
    masked = mask_pan(digits)
    if len(digits) < 13:
        assert masked == MASK
        return
    assert len(masked) == len(digits)
    shown = [i for i, ch in enumerate(masked) if ch != "*"]
    assert 2 * len(shown) <= len(digits)
    leading = len(masked) - len(masked.lstrip("0123456789"))
    trailing = len(masked) - len(masked.rstrip("0123456789"))
    assert leading <= 6 and trailing <= 4 and leading + trailing == len(shown)
    assert all(masked[i] == digits[i] for i in shown)


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("4222222222222", "42*******2222"),  # 13 digits: 6 shown at most
        ("4929731640582292", "4929********2292"),
        ("4929 7316 4058 2292", "4929********2292"),
        ("371449635398431", "371********8431"),
        ("6011000990139424123", "60110**********4123"),
        ("411111111111", MASK),
    ],
)
def test_examples(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked
