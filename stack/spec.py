"""The one description of the local stack (``make run``, the benchmark, every test stack); see
docs/development.md, "The local stack". ``StackSpec.ensure`` creates what is missing."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from pydantic_settings import BaseSettings

from contracts.card_order import OrderTiming
from security.codec import CodecKeyError, generate_keys_file, issued_ring, load_ring, ring_document, write_ring
from security.operator_tokens import ensure_operator_token
from security.pki import TemporalPki, ensure_local_pki
from security.sealing import EDGE, OPERATOR, RECEIVER, operator_name
from security.secret_files import write_secret
from settings import CodecServerSettings
from stack.env import write_temporal_profile
from stack.issuer_api import ApiAuthFiles
from stack.onboarding import ensure_issuer_keys, signing_key_file
from stack.servers import free_port

if TYPE_CHECKING:
    from stack.local import LocalStack

ISSUER_ID = "TESTISS001"  # the sample program's issuer (config/program.json, samples/)
OAUTH_CLIENT_ID = "d1-outbound"  # the outbound-OAuth client D1 uses toward the receiver
DEFAULT_TASK_QUEUE = "d1-card-orders"
# The demo's operators (a second one approves the first one's redirects: four eyes).
DEMO_OPERATORS = ("alice", "bob")

Transport = Literal["mtls", "plain"]
# "dev-loopback": make run's codec server for the dev server's UI (no sign-in possible):
# loopback browser requests from the UI's origin, PII masked, plus the CLI's static token.
CodecServerMode = Literal["off", "dev-loopback"]
ProcessKind = Literal["worker", "receiver", "emulator", "codec-server", "starter", "issuer-api", "temporal"]
# The processes that talk to Temporal (a Temporal client certificate each, when asked).
TEMPORAL_CLIENTS: tuple[ProcessKind, ...] = ("worker", "receiver", "starter", "issuer-api")


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the stack's servers; ``None`` metrics ports: no /metrics."""

    temporal: int
    temporal_ui: int
    emulator: int
    receiver: int
    codec_server: int
    worker_metrics: int | None = None
    receiver_metrics: int | None = None
    issuer_api: int | None = None  # None: no issuer API process (make run starts one)

    @classmethod
    def free(cls, *, metrics: bool = False) -> Ports:
        return cls(**{f.name: free_port() for f in dataclasses.fields(cls) if metrics or "metrics" not in f.name})

    def named(self) -> dict[str, int]:
        """What listens on each port, in field order (for "port already in use" messages)."""
        labels: tuple[str, ...] = ("Temporal", "Temporal UI", "emulator", "receiver", "codec server")
        labels += ("worker metrics", "receiver metrics", "issuer API")
        return {label: port for label, port in zip(labels, dataclasses.astuple(self), strict=True) if port is not None}


# make run's fixed ports (README "Two commands").
MAKE_RUN_PORTS = Ports(
    temporal=7233,
    temporal_ui=8233,
    emulator=8443,
    receiver=8080,
    codec_server=8234,
    worker_metrics=9464,
    receiver_metrics=9465,
    issuer_api=8445,
)


@dataclass(frozen=True)
class EmulatorOptions:
    """How the D1 sandbox behaves; ``None`` keeps the emulator's own default."""

    step_delay_ms: int = 500
    notify_retry_base_ms: int | None = None
    notify_retry_cap_ms: int | None = None
    admin_api: bool = True  # faults, scenarios, counters: every local stack drives them
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class StackSpec:
    state_dir: Path
    issuer_id: str = ISSUER_ID
    # More tenants of the same emulator: a certificate and a signing key each (security tests).
    other_issuers: tuple[str, ...] = ()
    transport: Transport = "mtls"
    # Outbound OAuth (the D1 tenant option): None = on with mutual TLS, off with plain HTTP.
    outbound_oauth: bool | None = None
    ports: Ports = field(default_factory=Ports.free)
    # Where Temporal is; None = the stack's own dev server on 127.0.0.1:ports.temporal.
    temporal_address: str | None = None
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    # Overrides of OrderTiming (the starter's; ORDER_* for a starter process).
    timing: Mapping[str, timedelta] = field(default_factory=dict)
    codec_server: CodecServerMode = "off"
    emulator: EmulatorOptions = field(default_factory=EmulatorOptions)
    # The payload-codec authority ring (every role's key: workers, codec server); None =
    # <state_dir>/codec-keys.json (created when missing). Each other process gets a file of its
    # own issued from it (StackPaths.issued_keys).
    codec_keys_file: Path | None = None
    # Operators with a keys file of their own (<state_dir>/operators/<name>.json).
    operators: tuple[str, ...] = DEMO_OPERATORS
    # GET /_receiver/stats with an operator token (<state_dir>/secrets/receiver-operators).
    receiver_operators: bool = False
    # Temporal behind a mutual-TLS endpoint: each Temporal client process presents its own
    # certificate of this PKI through Temporal's standard TEMPORAL_TLS_* variables.
    temporal_tls: TemporalPki | None = None
    # One-off field values per settings class, applied last: {D1ClientSettings: {"read_timeout_s": 2}}.
    overrides: Mapping[type[BaseSettings], Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.timing) - set(OrderTiming.model_fields)
        if unknown:
            raise ValueError(f"not OrderTiming fields: {sorted(unknown)}")
        object.__setattr__(self, "timing", _frozen(self.timing))
        object.__setattr__(self, "overrides", _frozen({k: _frozen(v) for k, v in self.overrides.items()}))

    def replace(self, **changes: Any) -> StackSpec:
        return dataclasses.replace(self, **changes)

    def override(self, settings_class: type[BaseSettings], **values: Any) -> StackSpec:
        unknown = set(values) - set(settings_class.model_fields)
        if unknown:
            raise ValueError(f"not {settings_class.__name__} fields: {sorted(unknown)}")
        merged = {**self.overrides, settings_class: {**self.overrides.get(settings_class, {}), **values}}
        return dataclasses.replace(self, overrides=merged)

    @property
    def oauth(self) -> bool:
        return self.transport == "mtls" if self.outbound_oauth is None else self.outbound_oauth

    @property
    def paths(self) -> StackPaths:
        return StackPaths.under(self.state_dir, codec_keys=self.codec_keys_file)

    def ensure(self) -> LocalStack:
        from stack.local import LocalStack  # it renders a spec: imports this module

        p = self.paths
        p.state_dir.mkdir(parents=True, exist_ok=True)
        ensure_issuer_keys(p.issuer_dir, self.issuer_id, self.other_issuers)
        if not p.codec_keys.exists():
            generate_keys_file(p.codec_keys)
        issue_process_keys(p, [EDGE, RECEIVER, *(f"{OPERATOR}:{name}" for name in self.operators)])
        pki = ensure_local_pki(p.pki_dir, [self.issuer_id, *self.other_issuers]) if self.transport == "mtls" else None
        if self.oauth and not p.oauth_client_secret.exists():
            write_secret(p.oauth_client_secret, secrets.token_urlsafe(32))
        if self.codec_server != "off":
            # The CLI's token reads (the codec server's read role); it never shows PII.
            ensure_operator_token(p.codec_operators, roles=[CodecServerSettings().oidc_read_role])
        if self.receiver_operators and not p.receiver_operators.exists():
            ensure_operator_token(p.receiver_operators)
        p.emulator_state.mkdir(parents=True, exist_ok=True)
        p.issuer_api.ensure(self.issuer_id)
        stack = LocalStack(self, p, pki)
        write_temporal_profile(p.temporal_profile, address=stack.temporal_address, namespace=self.namespace)
        return stack


@dataclass(frozen=True)
class StackPaths:
    state_dir: Path
    issuer_dir: Path
    signing_key: Path
    issuer_jwks: Path
    pki_dir: Path
    codec_keys: Path
    emulator_state: Path
    d1_encryption_key: Path
    oauth_client_secret: Path
    codec_operators: Path
    receiver_operators: Path
    temporal_profile: Path
    temporal_db: Path
    logs: Path
    keys_dir: Path
    operators_dir: Path

    def issued_keys(self, sealer: str) -> Path:
        """The keys file of one process (``edge``, ``receiver``) or operator (``operator:<name>``)."""
        name = operator_name(sealer)
        if name is not None:
            return self.operators_dir / f"{name}.json"
        if sealer not in (EDGE, RECEIVER):
            raise ValueError(f"{sealer!r}: workers and the codec server hold the authority ring ({self.codec_keys})")
        return self.keys_dir / f"{sealer}.json"

    issuer_api: ApiAuthFiles

    @classmethod
    def under(cls, state_dir: Path, *, codec_keys: Path | None = None) -> StackPaths:
        issuer, secrets_dir, emulator = state_dir / "issuer", state_dir / "secrets", state_dir / "emulator"
        return cls(
            state_dir=state_dir,
            issuer_dir=issuer,
            signing_key=signing_key_file(issuer),
            issuer_jwks=issuer / "public-keys.jwks",
            pki_dir=state_dir / "pki",
            codec_keys=codec_keys or state_dir / "codec-keys.json",
            emulator_state=emulator,
            # The emulator writes it there on its first start (emulator/keys.py).
            d1_encryption_key=emulator / "d1-encryption-public.jwk",
            oauth_client_secret=secrets_dir / "receiver-oauth-client-secret",
            codec_operators=secrets_dir / "codec-operators",
            receiver_operators=secrets_dir / "receiver-operators",
            temporal_profile=state_dir / "temporal-client.toml",
            temporal_db=state_dir / "temporal.db",
            logs=state_dir / "logs",
            keys_dir=state_dir / "keys",
            operators_dir=state_dir / "operators",
            issuer_api=ApiAuthFiles(state_dir / "issuer-api"),
        )


def issue_process_keys(paths: StackPaths, sealers: list[str]) -> None:
    """Each process's file from the authority ring, rewritten when the ring changed (a rotation,
    another ring given to the stack) so a restart picks the new key up."""
    try:
        authority = load_ring(paths.codec_keys)
    except CodecKeyError as err:
        # A local stack from before keys per role (nothing of it is worth keeping): say how to start over.
        raise CodecKeyError(
            f"{err}; a local stack's state from an older version: remove {paths.state_dir} (make clean)"
        ) from None
    for sealer in sealers:
        path = paths.issued_keys(sealer)
        ring = issued_ring(authority, sealer)
        if path.exists():
            try:
                if ring_document(load_ring(path)) == ring_document(ring):
                    continue
            except CodecKeyError:
                pass  # unreadable or of another form: issue it again
        path.parent.mkdir(parents=True, exist_ok=True)
        write_ring(path, ring)
