"""Helpers for the security tests: distinctive card data, assertions, JWEs and the leak scanner."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from jwcrypto import jwe, jwk, jwt
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import PayloadCodec

from d1.card_data import luhn_valid

ISSUER_ID = "TESTISS001"
OTHER_ISSUER_ID = "OTHERISS02"

# Distinctive, Luhn-valid, not 4111111111111111; every field below is searched for.
LEAK_PAN = "4929731640582292"
LEAK_EXP = "3108"
LEAK_CVV2 = "8371"
LEAK_CVV1 = "619"
LEAK_PVV = "7264"
LEAK_NAME = "QUIRINA ZYXWOLD"
LEAK_TRACK1 = f"%B{LEAK_PAN}^ZYXWOLD/QUIRINA^{LEAK_EXP}1010000000000000000?"
LEAK_TRACK2 = f";{LEAK_PAN}={LEAK_EXP}1010000012345?"
assert luhn_valid(LEAK_PAN) and LEAK_PAN != "4111111111111111"


def leak_card_data(**overrides: Any) -> dict[str, Any]:
    card = {"pan": LEAK_PAN, "exp": LEAK_EXP, "name": LEAK_NAME, "cvv1": LEAK_CVV1, "cvv2": LEAK_CVV2, "pvv": LEAK_PVV}
    card.update(overrides)
    return card


def leak_track_data() -> dict[str, str]:
    return {"track1": LEAK_TRACK1, "track2": LEAK_TRACK2}


# ---------------------------------------------------------------- leak scanner


def _keyed(value: str) -> re.Pattern[str]:
    """A short numeric secret (CVV, PVV, expiry) as the value of a card-data field: after a
    field name such as ``cvv2``, ``pvv`` or ``exp``, with any quoting and ``:``/``=`` between
    (serialized objects, JSON payloads, reprs, log lines), followed by anything but a digit."""
    keys = r"(?:cvv|cvc|csc|pvv|pin|exp|secur|track)\w*"
    return re.compile(r"(?i)" + keys + r"[\"'\\]*\s*[:=]\s*[\"'\\]*" + re.escape(value) + r"(?![0-9])")


# What may touch a short secret that stands alone. Three or four digits also occur by chance
# inside longer tokens (UUID groups, hex, numbers, addresses, times, versions, paths, escaped
# bytes such as ``\\3108``), so a bare value counts when neither neighbour is a letter, a digit
# or one of ``_ - . : / \\``, nor a comma before it (a log timestamp's milliseconds: ``,619``).
_TOKEN_EDGE = r"0-9A-Za-z_\-.:/\\"


def _bare(value: str) -> re.Pattern[str]:
    """A short numeric secret wherever it stands alone: ``["8371"]``, ``cvv 8371``, ``(619)``.

    Not for documents of numeric metadata (a raw Temporal history: ``"historySizeBytes":
    "8371"``); ``find_leaks(..., bare=False)`` searches those for the keyed form only."""
    return re.compile(rf"(?<![{_TOKEN_EDGE},]){re.escape(value)}(?![{_TOKEN_EDGE}])")


@dataclass(frozen=True)
class Needle:
    label: str
    pattern: re.Pattern[str]
    # What every match contains (lower-case when ``fold``): a fast test before the pattern.
    literal: str
    fold: bool = False
    bare: bool = False
    # Also searched once spaces, dashes, dots and slashes are removed ("4929 7316 ...").
    # Not for bare short values: joining neighbouring numbers would invent them.
    joined: bool = True


def _exact(label: str, value: str) -> Needle:
    return Needle(label, re.compile(re.escape(value)), value)


def needles(*, include_name: bool = True) -> list[Needle]:
    found = [_exact("PAN", LEAK_PAN), _exact("track1", LEAK_TRACK1), _exact("track2", LEAK_TRACK2)]
    for label, value in (("CVV2", LEAK_CVV2), ("CVV1", LEAK_CVV1), ("PVV", LEAK_PVV), ("exp", LEAK_EXP)):
        found += [Needle(label, _keyed(value), value), Needle(label, _bare(value), value, joined=False, bare=True)]
    if include_name:
        found += [
            Needle("name", re.compile(re.escape(LEAK_NAME), re.IGNORECASE), LEAK_NAME.lower(), fold=True),
            Needle("name", re.compile("ZYXWOLD", re.IGNORECASE), "zyxwold", fold=True),
        ]
    return found


_B64 = re.compile(r"^[A-Za-z0-9+/_-]{8,}={0,2}$")
# A base64 token inside any text (a log line, a header, a repr), not only a whole JSON string.
_B64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def _decoded_views(text: str) -> Iterator[str]:
    """base64 strings (payload data in a raw history) decoded, so an unencrypted payload is found."""
    if len(text) < 8 or not _B64.match(text):
        return
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        yield raw.decode("utf-8", errors="ignore")


def _decoded_tokens(text: str) -> Iterator[str]:
    """Every base64 token of a plain text that decodes to UTF-8 text (random words and
    ciphertext do not), so base64-encoded card data is found outside JSON as well."""
    for token in _B64_TOKEN.findall(text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                yield decode(token + "=" * (-len(token) % 4)).decode("utf-8")
            except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
                continue


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        yield from _decoded_views(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def readable(json_text: str) -> str:
    """A JSON document's strings with every base64 value decoded (how a reader sees payloads)."""
    return "\n".join(_strings(json.loads(json_text)))


def find_leaks(where: str, texts: Iterable[str], *, include_name: bool = True, bare: bool = True) -> list[str]:
    """Every needle found in ``texts`` (also with spaces and dashes removed, in any base64
    token of the text and in any base64 string inside JSON documents), as readable hit
    descriptions: one per view of a text that holds a needle."""
    hits = []
    found = [needle for needle in needles(include_name=include_name) if bare or not needle.bare]
    for text in texts:
        views = [(text, False), (re.sub(r"[ \-./]", "", text), True), ("\n".join(_decoded_tokens(text)), False)]
        try:
            views.append(("\n".join(_strings(json.loads(text))), False))
        except ValueError:
            pass
        for view, joined in views:
            folded = view.lower() if include_name else view
            for needle in found:
                if (joined and not needle.joined) or needle.literal not in (folded if needle.fold else view):
                    continue
                match = needle.pattern.search(view)
                if match:
                    start = max(0, match.start() - 60)
                    hits.append(f"{where}: {needle.label} in {text[:80]!r} … {view[start : match.end() + 60]!r}…")
                    break
    return hits


# ---------------------------------------------------------------- D1 client pieces


def make_assertion(
    key: jwk.JWK, issuer_id: str = ISSUER_ID, *, exp_in: int = 300, alg: str = "ES256", kid: str | None = None
) -> str:
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", "kid": kid if kid is not None else key["kid"]}
    claims = {"iss": issuer_id, "sub": issuer_id, "iat": now, "exp": now + exp_in}
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(key)
    result: str = token.serialize()
    return result


def encrypt(
    plaintext: dict[str, Any], key: jwk.JWK, *, alg: str = "ECDH-ES", enc: str = "A256GCM", kid: str | None = None
) -> str:
    header = {"alg": alg, "enc": enc, "kid": kid if kid is not None else key["kid"]}
    token = jwe.JWE(json.dumps(plaintext).encode(), protected=json.dumps(header))
    token.add_recipient(key)
    result: str = token.serialize(compact=True)
    return result


# ---------------------------------------------------------------- decrypted history


def _payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside a protobuf message (nested, repeated and map fields)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:  # map<string, Payload> (headers, memo, ...)
            for item in value.values():
                if isinstance(item, Message):
                    yield from _payloads(item)
        elif field.is_repeated:
            for item in value:
                yield from _payloads(item)
        else:
            yield from _payloads(value)


async def decrypted_history(client: Client, workflow_id: str, codec: PayloadCodec) -> list[str]:
    """Every payload of a workflow's history as the holder of the codec key reads it:
    decrypted, as text (search attributes, which the codec never seals, as they are)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    texts: list[str] = []
    for event in history.events:
        for payload in _payloads(event):
            if payload.metadata.get("encoding") == b"binary/encrypted":
                [payload] = await codec.decode([payload])
            texts.append(payload.data.decode("utf-8", errors="replace"))
    return texts
