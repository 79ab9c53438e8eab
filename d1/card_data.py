"""What card data is: the one definition the card-data guard (d1/card_data_guard.py) and
the redaction layer (security/redaction/) both use, so what the guard refuses to send is,
by construction, what redaction masks.

* **Names.** A member, key or attribute is card data by its name after
  :func:`normalized_name` (``card_data``, ``cardData``, ``d1.card-data`` all read
  ``carddata``): the PAN (``pan``, ``cardNumber``, ...), the expiry (``exp``,
  ``expMonth``, ``expiry*``, ``expiration*``), the security code (``cvv*``, ``cvc*``,
  ``cvn*``, ``csc``, ``cid``, ``securityCode``, ``cardVerification*``, ...), ``pvv``,
  ``pin``/``pinBlock``, ``panSequenceNumber``, tracks (``track1``, ``trackData``,
  ``magStripe``) and whole card-data containers (``cardData``, ``sensitiveData``).
* **Numbers.** A PAN in text is a Luhn-valid run of 13-19 digits, or 13-19 digits written
  the way card numbers are written: groups 4-4-4-4 (and 4-4-4-4 with a last group of 1-3),
  Amex 4-6-5, Diners 4-6-4, 4-6-6, or digit by digit. ``strict`` (the guard: it refuses an
  order, so only what is clearly a card number) wants one separator character used
  throughout; otherwise (redaction: masking a look-alike costs nothing) separators may mix
  and be up to three characters long (``4929 - 7316.4058/2292``).

Ids of the product's own format are never card numbers, whatever digits they hold: hex ids
of 16 to 64 characters in whole 32-bit words (OpenTelemetry trace and span ids, digests, ``uuid4().hex``) and
UUIDs (Temporal run ids, D1 operation ids). Dates, times, addresses and versions are not
card layouts, so ``req-0001-20261207-034640`` or ``order-1764578213-001`` are not either.
"""

from __future__ import annotations

import re
from itertools import pairwise

# ---------------------------------------------------------------- names

PAN_NAMES = frozenset({"pan", "primaryaccountnumber", "cardnumber", "accountnumber"})
_EXACT_NAMES = PAN_NAMES | {
    "pansequencenumber",
    # expiry (everything starting "expir" is caught below)
    *"exp expdate expmonth expyear cardexpiry cardexpirydate cardexpirationdate".split(),
    # the names issuers, acquirers and PSP APIs give the security code (CVV2/CVC2/CID/CVN/...)
    *"csc cid cvd cav cav2 cardcode securitycode cardsecuritycode verificationvalue".split(),
    *"pvv pin pinblock".split(),
    # containers: everything below them is card data
    *"carddata sensitivedata sensitiveplaintext magstripe".split(),
}
_PREFIXES = ("cvv", "cvc", "cvn", "expir", "cardverification")
_SUFFIXES = ("cvv", "cvv2", "cvc", "cvc2", "cvn", "cvn2", "securitycode", "verificationvalue")
# track1, track2, tracks, trackData... but not trackingNumber or trackingType.
_TRACK_NAME = re.compile(r"^track(?:s|data|[0-9].*)?$")


def normalized_name(name: str) -> str:
    """The last dotted part, without ``_``/``-``, lower case: ``d1.card_Data`` → ``carddata``."""
    return name.rsplit(".", 1)[-1].replace("_", "").replace("-", "").lower()


def is_card_data_name(name: str) -> bool:
    """Whether a member name reads like card data (``CVV2``, ``security_code``, ``track1``...)."""
    n = normalized_name(name)
    return n in _EXACT_NAMES or n.startswith(_PREFIXES) or n.endswith(_SUFFIXES) or _TRACK_NAME.match(n) is not None


# ---------------------------------------------------------------- numbers


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# A maximal run of digit groups holding at least 13 digits, each gap up to three spaces,
# tabs, no-break spaces, dashes, dots or slashes; pan_spans decides what in it is a PAN.
_RUN = re.compile(r"(?<![0-9])[0-9](?:[ \t\u00a0./-]{0,3}[0-9]){12,}")
_GROUP = re.compile(r"[0-9]+")
# Group lengths of a written card number (a prefix of one of these may grow into one).
_LAYOUTS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (4, 4, 4, 4, 3), (4, 6, 4), (4, 6, 5), (4, 6, 6)})
_LAYOUT_PREFIXES = frozenset(layout[:n] for layout in _LAYOUTS for n in range(1, len(layout) + 1))
_HEX = r"[0-9a-fA-F]"
_PRODUCT_ID = re.compile(
    r"(?<![0-9A-Za-z])(?:"
    + rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"  # UUID
    + rf"|(?=[0-9]*[a-fA-F])(?:{_HEX}{{8}}){{2,8}}"  # 16-64 hex digits, at least one a-f
    + r")(?![0-9A-Za-z])"
)


def _hits(run: str, offset: int, *, strict: bool) -> list[tuple[int, int]]:
    """Spans of PANs in one run of digit groups, windows aligned on whole groups (a PAN
    never starts or ends inside a group, so a longer number is never cut up)."""
    if run.isdigit():  # the common case: one run, no separators
        return [(offset, offset + len(run))] if len(run) <= 19 and luhn_valid(run) else []
    groups = list(_GROUP.finditer(run))
    gaps = [run[a.end() : b.start()] for a, b in pairwise(groups)]
    hits: list[tuple[int, int]] = []
    for i in range(len(groups)):
        lengths: tuple[int, ...] = ()
        for j in range(i, len(groups)):
            if j > i and strict and (len(gaps[j - 1]) != 1 or gaps[j - 1] != gaps[i]):
                break  # the guard: one separator character, the same throughout
            size = groups[j].end() - groups[j].start()
            lengths += (size,)
            digits = "".join(g.group(0) for g in groups[i : j + 1])
            if (lengths in _LAYOUTS or (j == i and 13 <= size <= 19)) and luhn_valid(digits):
                hits.append((offset + groups[i].start(), offset + groups[j].end()))
            if lengths not in _LAYOUT_PREFIXES:
                break
    # Digit by digit, one separator character between: the whole stretch is the candidate.
    start = 0
    while start < len(groups):
        end = start
        while (
            end + 1 < len(groups)
            and groups[end].end() - groups[end].start() == 1
            and groups[end + 1].end() - groups[end + 1].start() == 1
            and len(gaps[end]) == 1
            and (not strict or gaps[end] == gaps[start])
        ):
            end += 1
        if 13 <= end - start + 1 <= 19 and luhn_valid("".join(g.group(0) for g in groups[start : end + 1])):
            hits.append((offset + groups[start].start(), offset + groups[end].end()))
        start = end + 1
    return hits


def pan_spans(text: str, *, strict: bool = False) -> list[tuple[int, int]]:
    """Where ``text`` holds card numbers: sorted, non-overlapping ``(start, end)`` spans
    (overlapping hits are merged, so a PAN next to other numbers never shows more than
    more than d1/masking.py allows once masked). Ids of the product's own format are skipped."""
    hits: list[tuple[int, int]] = []
    for match in _RUN.finditer(text):
        hits += _hits(match.group(0), match.start(), strict=strict)
    if not hits:
        return []
    ids = [m.span() for m in _PRODUCT_ID.finditer(text)]
    merged: list[list[int]] = []
    for start, end in sorted(hits):
        if any(start < id_end and id_start < end for id_start, id_end in ids):
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def holds_pan(text: str, *, strict: bool = True) -> bool:
    """Whether the text holds a card number (by default only what is clearly one)."""
    return bool(pan_spans(text, strict=strict))
