"""The last check before a body leaves for D1: no card data outside ``encryptedData``.

Validation refuses unknown members inside ``cardData``/``trackData``, but a body can still
carry card data elsewhere (an unknown member let through with ``--allow-unknown-fields``,
extra members of a hand-built ``CardOrder``, a PAN pasted into an address line). This guard
walks the whole body (keys and values, at any depth) except ``encryptedData`` and reports,
by JSON path and without the value, a member *named* like card data or a value (or key)
*holding* a card number, as d1/card_data.py defines them, in its strict reading (it refuses
an order: ids merely holding digits pass; issuers should not use 13-19 digit numbers as
ids). It runs at the starter and again in the worker right before the HTTP call, in every mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from d1.card_data import holds_pan, is_card_data_name
from d1.issues import Issue, IssueKind, Path

ENCRYPTED_MEMBER = "encryptedData"


_LUHN = "13-19 digits passing the Luhn check"
_NAMED = "is named like card data, which must only travel inside encryptedData"
_KEY_HOLDS_PAN = f"a member name holds a card-number-shaped value ({_LUHN})"
_TEXT_HOLDS_PAN = f"holds a card-number-shaped value ({_LUHN}); card data must only travel inside encryptedData"
_NUMBER_HOLDS_PAN = f"holds a card-number-shaped number ({_LUHN})"
_ID_HOLDS_PAN = f"holds a card-number-shaped value ({_LUHN}); identifiers and notes must not carry card data"


def _walk(value: Any, path: Path, text_reason: str = _TEXT_HOLDS_PAN) -> Iterator[Issue]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key)
            child: Path = (*path, name if _safe_path_part(name) else "<member>")
            if not path and name == ENCRYPTED_MEMBER:
                continue
            if is_card_data_name(name):
                yield Issue(child, _NAMED, IssueKind.NOT_ALLOWED)
            elif holds_pan(name):
                yield Issue((*path, "<member>"), _KEY_HOLDS_PAN, IssueKind.NOT_ALLOWED)
            else:
                yield from _walk(item, child, text_reason)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i), text_reason)
    elif isinstance(value, str) and holds_pan(value):
        yield Issue(path, text_reason, IssueKind.NOT_ALLOWED)
    elif isinstance(value, int) and not isinstance(value, bool) and holds_pan(str(value)):
        yield Issue(path, _NUMBER_HOLDS_PAN, IssueKind.NOT_ALLOWED)


_SAFE_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def _safe_path_part(name: str) -> bool:
    """A member name may be repeated in a path only if it cannot itself be card data."""
    return bool(_SAFE_PART.match(name)) and not holds_pan(name)


def card_data_issues(body: Mapping[str, Any], *, clear_members: frozenset[str] = frozenset()) -> list[Issue]:
    """Every place ``body`` carries card data outside ``encryptedData`` (empty: safe to send).

    ``clear_members``: top-level members the program sends in clear on purpose (only
    ``trackData`` when the program places tracks outside the JWE; see d1/assumptions.py)."""
    if clear_members:
        body = {k: v for k, v in body.items() if k not in clear_members}
    return list(_walk(body, ()))


def identifier_issues(values: Mapping[str, Any], *, path: Path = ()) -> list[Issue]:
    """Identifiers and free text the edge takes (``cardId``, ``issuerRequestId``,
    ``consumerId``, ``groupId``, ``orderId``, a change's ``note``, ...), by member name: each
    value holding a card number (or a member named like card data) is an issue at its JSON
    path under ``path``, without the value. The one check every identifier the edge accepts
    goes through (starter/edge.py, d1/validation.py); a ``None`` value is absent."""
    present = {name: value for name, value in values.items() if value is not None}
    return list(_walk(present, path, _ID_HOLDS_PAN))


class CardDataInClear(ValueError):
    """A body would have carried card data outside ``encryptedData``; nothing was sent."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__(
            "card data outside encryptedData: " + "; ".join(f"{i.dotted('$')}: {i.reason}" for i in issues)
        )


def ensure_no_card_data(body: Mapping[str, Any], *, clear_members: frozenset[str] = frozenset()) -> None:
    """Raise :class:`CardDataInClear` (paths and reasons only) if the body is not safe to send."""
    issues = card_data_issues(body, clear_members=clear_members)
    if issues:
        raise CardDataInClear(issues)
