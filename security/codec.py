"""Temporal payload codec: AES-256-GCM with one key per *role*, each payload bound to its
workflow and naming who sealed it (docs/security.md, "Who may move a card").

* **Roles.** Each process seals with the key of its role only: ``edge`` (issuer services),
  ``receiver`` (D1's calls), ``worker`` (workflows and activities), and one key per named
  operator (``operator:<name>``), derived from the operators' master key so that workers need
  not list every operator. Decoding sets the payload metadata ``sealed-by`` to the sealer the
  key belongs to (security/sealing.py), so a workflow handler can refuse a message from the
  wrong role: a stolen receiver key can produce notifications, never a redirect. What is not a
  message (views, results, activity payloads, failures) is sealed with the ``reader`` key, which
  the edge and operators hold to read what they asked and which no handler accepts a message from.
* **Bound to the workflow.** The associated data holds the key id and the workflow id the
  payload was made for (the SDK's serialization context, :meth:`AesGcmCodec.with_context`),
  also kept in clear as ``sealed-for`` so the codec server, which has no context, can still
  open it for the UI. Opened for another workflow, a payload is refused.
* **Refused, not raised.** A payload the codec will not open becomes a marker
  (security/payload_refusal.py): raising would wedge the whole workflow activation.
* **Rotation.** Keys are named by ``encryption-key-id``; a new key per role is added with the
  old ones kept for decoding (docs/operations.md, "Rotating keys"). ``python -m
  security.keys_tool`` makes, issues and rotates the files.

Keys file::

    {"seal_as": "worker",
     "active": {"worker": "worker-1", "edge": "edge-1", "receiver": "receiver-1", "operator": "operators-1"},
     "keys": {"worker-1": {"role": "worker", "key": "<base64 32 bytes>"},
              "operators-1": {"role": "operator", "derive": true, "key": "<base64 32 bytes>"},
              "operators-1/alice": {"role": "operator:alice", "key": "<base64 32 bytes>"}}}

``seal_as`` is who this process seals as; ``active`` names the key each role seals with; a
``derive`` key is an operators' master key (an operator's own file holds only its derived key,
``<master>/<name>``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from security.payload_refusal import REFUSED_ENCODING, TAMPERED, UNENCRYPTED, UNKNOWN_KEY, WRONG_WORKFLOW, refused
from security.sealing import EDGE, FOR_READERS, OPERATOR, READER, ROLES, SEALED_BY, SEALED_FOR, operator_name
from security.secret_files import warn_if_exposed, write_secret_bytes

log = logging.getLogger("security.codec")

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
CIPHER = "encryption-cipher"
CIPHER_NAME = b"AES-256-GCM"
NONCE_BYTES = 12
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class CodecKeyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Key:
    role: str  # a role of security/sealing.py, or "operator:<name>" for an operator's own key
    secret: bytes
    derive: bool = False  # an operators' master key: operator keys are derived from it


@dataclass(frozen=True)
class KeyRing:
    keys: Mapping[str, Key]
    active: Mapping[str, str]  # role -> kid it seals with
    seal_as: str

    def __post_init__(self) -> None:
        for kid, key in self.keys.items():
            if len(key.secret) != 32:
                raise CodecKeyError(f"codec key {kid!r} must be 32 bytes (AES-256)")
            if key.derive and key.role != OPERATOR:
                raise CodecKeyError(f"codec key {kid!r}: only an operators' master key is derived from")
        for role, kid in self.active.items():
            if kid not in self.keys:
                raise CodecKeyError(f"active codec key {kid!r} of role {role!r} is not among the configured keys")
        self.sealing_key(self.seal_as)  # fails early with a clear message

    def sealing_key(self, sealer: str) -> tuple[str, bytes]:
        """The (kid, key) ``sealer`` ("edge", "operator:alice", ...) seals with."""
        name = operator_name(sealer)
        role = OPERATOR if name is not None else sealer
        if role not in ROLES:
            raise CodecKeyError(f"{sealer!r} is not a sealer: one of {', '.join(sorted(ROLES))} or operator:<name>")
        kid = self.active.get(role)
        if kid is None:
            raise CodecKeyError(f"this keys file has no active key for role {role!r}, so it cannot seal as {sealer!r}")
        key = self.keys[kid]
        if name is None:
            return kid, key.secret
        if key.derive:
            return f"{kid}/{name}", derive_operator_key(key.secret, name)
        if key.role != sealer:
            raise CodecKeyError(f"active operator key {kid!r} belongs to {key.role!r}, not {sealer!r}")
        return kid, key.secret

    def opening_key(self, kid: str) -> tuple[str, bytes] | None:
        """(sealer, key) of a key id, deriving an operator's key from its master key."""
        key = self.keys.get(kid)
        if key is not None and not key.derive:
            return key.role, key.secret
        master_kid, slash, name = kid.partition("/")
        master = self.keys.get(master_kid)
        if slash and master is not None and master.derive and operator_name(f"{OPERATOR}:{name}") is not None:
            return f"{OPERATOR}:{name}", derive_operator_key(master.secret, name)
        return None


def derive_operator_key(master: bytes, name: str) -> bytes:
    info = f"card-orders payload codec, operator {name}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def _context_workflow_id(context: SerializationContext) -> str | None:
    if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
        return context.workflow_id or ""
    return None


class AesGcmCodec(PayloadCodec, WithSerializationContext):
    def __init__(
        self,
        ring: KeyRing,
        *,
        seal_as: str | None = None,
        accept_unencrypted: bool = False,
        on_refused: Callable[[str], None] | None = None,
        workflow_id: str | None = None,
    ) -> None:
        self._ring = ring if seal_as is None else replace(ring, seal_as=seal_as)
        self._sealer = self._ring.seal_as
        self._kid, secret = self._ring.sealing_key(self._sealer)
        self._cipher = AESGCM(secret)
        # Results and activity payloads: the readers' key where this process holds it.
        self._reader_kid, self._reader = self._kid, self._cipher
        if READER in self._ring.active and self._sealer != READER:
            self._reader_kid, reader_secret = self._ring.sealing_key(READER)
            self._reader = AESGCM(reader_secret)
        self._openers: dict[str, tuple[str, AESGCM] | None] = {}
        self.accept_unencrypted = accept_unencrypted
        self._on_refused = on_refused
        # None: no serialization context (the codec server, a history export): any workflow.
        self._workflow_id = workflow_id

    @property
    def active_key_id(self) -> str:
        return self._kid

    @property
    def sealer(self) -> str:
        return self._sealer

    @property
    def ring(self) -> KeyRing:
        return self._ring

    def with_context(self, context: SerializationContext) -> AesGcmCodec:
        workflow_id = _context_workflow_id(context)
        if workflow_id == self._workflow_id:
            return self
        bound = AesGcmCodec.__new__(AesGcmCodec)
        bound.__dict__.update(self.__dict__)
        bound._workflow_id = workflow_id
        return bound

    def sealing_as(self, sealer: str) -> AesGcmCodec:
        """The same keys sealing as someone else (a keys file holding that role's key)."""
        return AesGcmCodec(
            self._ring,
            seal_as=sealer,
            accept_unencrypted=self.accept_unencrypted,
            on_refused=self._on_refused,
            workflow_id=self._workflow_id,
        )

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        inner = Payload()
        inner.CopyFrom(payload)
        kid, cipher = (self._reader_kid, self._reader) if FOR_READERS in inner.metadata else (self._kid, self._cipher)
        for name in (SEALED_BY, SEALED_FOR, FOR_READERS):  # only decoding says who sealed it, and for what
            if name in inner.metadata:
                del inner.metadata[name]
        workflow_id = self._workflow_id or ""
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, inner.SerializeToString(), _aad(kid, workflow_id))
        metadata = {"encoding": ENCODING, KEY_ID: kid.encode(), CIPHER: CIPHER_NAME}
        metadata[SEALED_FOR] = workflow_id.encode()
        return Payload(metadata=metadata, data=nonce + sealed)

    def decode_one(self, payload: Payload) -> Payload:
        """A refused marker, never an exception: see the module doc."""
        encoding = payload.metadata.get("encoding")
        if encoding != ENCODING:
            if encoding == REFUSED_ENCODING.encode():
                return payload
            if self.accept_unencrypted:
                return payload  # migration setting: payloads written before the codec was enabled
            return self._refuse(UNENCRYPTED, "a payload not sealed by the product's codec")
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        opener = self._opener(kid)
        if opener is None:
            return self._refuse(UNKNOWN_KEY, f"a payload sealed with unknown codec key {kid[:40]!r}")
        sealer, cipher = opener
        sealed_for = payload.metadata.get(SEALED_FOR, b"").decode(errors="replace")
        if self._workflow_id is not None and sealed_for != self._workflow_id:
            return self._refuse(WRONG_WORKFLOW, f"a payload sealed by {sealer} for another workflow")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            opened = Payload.FromString(cipher.decrypt(nonce, sealed, _aad(kid, sealed_for)))
        except Exception:
            return self._refuse(TAMPERED, f"a payload sealed with key {kid[:40]!r} that failed authentication")
        opened.metadata[SEALED_BY] = sealer.encode()
        opened.metadata[SEALED_FOR] = sealed_for.encode()
        return opened

    def _opener(self, kid: str) -> tuple[str, AESGCM] | None:
        if kid not in self._openers:
            found = self._ring.opening_key(kid) if _KID.match(kid.replace("/", "", 1)) else None
            self._openers[kid] = (found[0], AESGCM(found[1])) if found is not None else None
        return self._openers[kid]

    def _refuse(self, reason: str, what: str) -> Payload:
        log.warning("payload codec refused %s (%s); the message it belongs to is not accepted", what, reason)
        if self._on_refused is not None:
            self._on_refused(reason)
        return refused(reason)


def _aad(kid: str, workflow_id: str) -> bytes:
    return json.dumps([kid, workflow_id]).encode()


def parse_ring(doc: Any) -> KeyRing:
    keys = {}
    for kid, entry in doc["keys"].items():
        if not isinstance(kid, str) or not _KID.match(kid.replace("/", "", 1)):
            raise ValueError("bad key id")
        keys[kid] = Key(
            role=str(entry["role"]), secret=base64.b64decode(entry["key"]), derive=bool(entry.get("derive"))
        )
    return KeyRing(keys=keys, active={str(r): str(k) for r, k in doc["active"].items()}, seal_as=str(doc["seal_as"]))


def ring_document(ring: KeyRing) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for kid, key in ring.keys.items():
        keys[kid] = {"role": key.role, "key": base64.b64encode(key.secret).decode()}
        if key.derive:
            keys[kid]["derive"] = True
    return {"seal_as": ring.seal_as, "active": dict(ring.active), "keys": keys}


def load_ring(path: Path) -> KeyRing:
    warn_if_exposed(path)
    try:
        return parse_ring(json.loads(path.read_text()))
    except OSError as exc:
        raise CodecKeyError(f"cannot read codec keys file {path}: {exc.strerror}") from None
    except CodecKeyError as err:
        raise CodecKeyError(f"codec keys file {path}: {err}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CodecKeyError(f"codec keys file {path} is not of the documented form (security/codec.py)") from None


def load_codec(
    path: Path,
    *,
    seal_as: str | None = None,
    accept_unencrypted: bool = False,
    on_refused: Callable[[str], None] | None = None,
) -> AesGcmCodec:
    return AesGcmCodec(load_ring(path), seal_as=seal_as, accept_unencrypted=accept_unencrypted, on_refused=on_refused)


def _new_kid(role: str) -> str:
    return f"{role}-{secrets.token_hex(4)}"


def new_ring(seal_as: str = "worker") -> KeyRing:
    """Every role's key and the operators' master key: what workers hold (and the codec server,
    to decode). Issue each other process its own file with :func:`issue_keys_file`."""
    keys, active = {}, {}
    for role in sorted(ROLES):
        kid = _new_kid("operators" if role == OPERATOR else role)
        keys[kid] = Key(role=role, secret=AESGCM.generate_key(256), derive=role == OPERATOR)
        active[role] = kid
    return KeyRing(keys=keys, active=active, seal_as=seal_as)


def generate_keys_file(path: Path, seal_as: str = "worker") -> Path:
    """A fresh keys file with every role's key (local stack and tests), 0600."""
    return write_ring(path, new_ring(seal_as))


def write_ring(path: Path, ring: KeyRing) -> Path:
    return write_secret_bytes(path, json.dumps(ring_document(ring), indent=2).encode())


def issued_ring(ring: KeyRing, sealer: str) -> KeyRing:
    """What one process of ``sealer`` holds: its role's sealing key (an operator: the key derived
    for that operator) and, for the edge and operators, the readers' key, so that they read the
    views and results of what they ask. It opens nothing else, and the readers' key forges nothing:
    no handler accepts a message sealed with it."""
    kid, secret = ring.sealing_key(sealer)
    role = OPERATOR if operator_name(sealer) is not None else sealer
    keys, active = {kid: Key(role=sealer, secret=secret)}, {role: kid}
    if role in (EDGE, OPERATOR) and READER in ring.active:
        reader_kid = ring.active[READER]
        keys[reader_kid], active[READER] = ring.keys[reader_kid], reader_kid
        for old_kid, key in ring.keys.items():  # older readers' keys: results sealed before a rotation
            if key.role == READER:
                keys[old_kid] = key
    return KeyRing(keys=keys, active=active, seal_as=sealer)


def issue_keys_file(authority: Path, sealer: str, path: Path) -> Path:
    return write_ring(path, issued_ring(load_ring(authority), sealer))


def add_key(path: Path, role: str = "worker") -> str:
    """Rotation: a fresh active key for ``role`` (old keys stay for decoding), rewritten 0600."""
    ring = load_ring(path)
    if role not in ROLES:
        raise CodecKeyError(f"{role!r} is not a role: one of {', '.join(sorted(ROLES))}")
    kid = _new_kid("operators" if role == OPERATOR else role)
    keys = dict(ring.keys)
    keys[kid] = Key(role=role, secret=AESGCM.generate_key(256), derive=role == OPERATOR)
    write_ring(path, KeyRing(keys=keys, active={**ring.active, role: kid}, seal_as=ring.seal_as))
    return kid
