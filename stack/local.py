"""A :class:`stack.spec.StackSpec` whose files exist: settings objects in-process, and the
environment (rendered *from* those objects, stack/env.py) and command line for a child."""

from __future__ import annotations

import dataclasses
import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic_settings import BaseSettings

from contracts import search_attributes as sa
from contracts.card_order import OrderTiming
from emulator.config import EmulatorSettings
from security.pki import LocalPki
from security.sealing import EDGE, RECEIVER
from security.secret_files import read_secret
from security.tls import client_ssl_context
from settings import (
    REPO_ROOT,
    CodecServerSettings,
    CodecSettings,
    D1ClientSettings,
    EventsSettings,
    IssuerApiSettings,
    OrderTimingSettings,
    ReceiverSettings,
    TelemetrySettings,
    TemporalSettings,
)
from stack.env import base_environment, settings_env
from stack.servers import LOOPBACK
from stack.spec import OAUTH_CLIENT_ID, TEMPORAL_CLIENTS, Ports, ProcessKind, StackPaths, StackSpec

if TYPE_CHECKING:
    from temporalio.client import Client, Interceptor
    from temporalio.runtime import Runtime

    from starter.edge import OrderEdge

# What the starter reads of D1ClientSettings: it encrypts for D1, it never calls D1.
_STARTER_D1_FIELDS = ("issuer_id", "program_file", "expiry_format", "encryption_public_key_file")

S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class LocalStack:
    spec: StackSpec
    paths: StackPaths
    pki: LocalPki | None

    @property
    def ports(self) -> Ports:
        return self.spec.ports

    @property
    def scheme(self) -> str:
        return "http" if self.pki is None else "https"  # StackSpec.ensure makes a PKI for mutual TLS only

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
    def issuer_api_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.ports.issuer_api}"

    @property
    def codec_server_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.codec_server}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ports.temporal_ui}"

    def override(self, settings_class: type[BaseSettings], **values: Any) -> LocalStack:
        return dataclasses.replace(self, spec=self.spec.override(settings_class, **values))

    def _settings(self, cls: type[S], values: Mapping[str, Any]) -> S:
        return cls(**{**values, **self.spec.overrides.get(cls, {})})

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
        if (pki := self.pki) is not None:
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
        if (pki := self.pki) is not None:
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

    def issuer_api_settings(self) -> IssuerApiSettings:
        """Mutual TLS as the receiver (its local server certificate names the same loopback hosts);
        OAuth tokens of the local stand-in authorization server (stack/issuer_api.py)."""
        from stack.issuer_api import AUDIENCE, ISSUER

        values: dict[str, Any] = {
            "port": self.ports.issuer_api or 0,
            "oauth_issuer": ISSUER,
            "oauth_audience": AUDIENCE,
            "oauth_jwks_file": self.paths.issuer_api.jwks,
        }
        if (pki := self.pki) is not None:
            values |= {
                "tls_cert_file": pki.receiver_server.cert,
                "tls_key_file": pki.receiver_server.key,
                "tls_client_ca_file": pki.ca_cert,
            }
        else:
            values["allow_plaintext"] = True
        return self._settings(IssuerApiSettings, values)

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
        retry = {"notify_retry_base_ms": opts.notify_retry_base_ms, "notify_retry_cap_ms": opts.notify_retry_cap_ms}
        values |= {name: ms for name, ms in retry.items() if ms is not None}
        if (pki := self.pki) is not None:
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

    def codec_settings(self, kind: ProcessKind = "worker") -> CodecSettings:
        """The receiver seals with its own file; workers and the codec server hold the authority
        ring. The CLI (``starter``) reads order state, which only the ring opens, so in this
        development stack it holds the ring and names its operator (``CODEC_DEV_OPERATOR``):
        docs/security.md, "Who holds which key"."""
        if kind == "receiver":
            return self._settings(CodecSettings, {"keys_file": self.paths.issued_keys(RECEIVER)})
        if kind == "issuer-api":  # the issuer edge as a process: it starts orders, with the edge's file
            return self._settings(CodecSettings, {"keys_file": self.paths.issued_keys(EDGE)})
        values: dict[str, Any] = {"keys_file": self.paths.codec_keys}
        if kind == "starter" and self.spec.operators:
            values["dev_operator"] = self.spec.operators[0]
        return self._settings(CodecSettings, values)

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
        return OrderTiming(**{**self.timing_settings().model_dump(), **self.spec.timing})

    def telemetry_settings(self, kind: ProcessKind) -> TelemetrySettings:
        port = {"worker": self.ports.worker_metrics, "receiver": self.ports.receiver_metrics}.get(kind)
        return self._settings(TelemetrySettings, {} if port is None else {"metrics_port": port})

    def events_settings(self) -> EventsSettings:
        """Endpoints on loopback allowed: the local stack's receivers listen there (docs/events.md)."""
        return self._settings(EventsSettings, {"allow_loopback": True})

    def order_edge(self) -> OrderEdge:
        from starter.edge import OrderEdge

        return OrderEdge.from_settings(self.d1_settings())

    def variables(self, kind: ProcessKind) -> dict[str, str]:
        rendered: dict[str, str] = {}
        if kind in TEMPORAL_CLIENTS:
            rendered |= settings_env(self.temporal_settings())
            rendered |= settings_env(self.codec_settings(kind))
            if (tls := self.spec.temporal_tls) is not None:
                client = tls.client(kind)
                rendered |= {
                    "TEMPORAL_TLS_CLIENT_CERT_PATH": str(client.cert),
                    "TEMPORAL_TLS_CLIENT_KEY_PATH": str(client.key),
                    "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tls.ca_cert),
                }
        if kind in ("worker", "receiver"):
            rendered |= settings_env(self.telemetry_settings(kind))
        if kind == "worker":
            rendered |= settings_env(self.d1_settings()) | settings_env(self.events_settings())
        elif kind == "receiver":
            rendered |= settings_env(self.receiver_settings())
        elif kind == "emulator":
            rendered |= settings_env(self.emulator_settings())
        elif kind == "codec-server":
            rendered |= settings_env(self.codec_server_settings()) | settings_env(self.codec_settings(kind))
        elif kind in ("starter", "issuer-api"):
            rendered |= settings_env(self.d1_settings(), include=_STARTER_D1_FIELDS)
            beyond = set(self.spec.timing) - set(OrderTimingSettings.model_fields)
            if beyond:
                raise ValueError(f"a starter process cannot be given OrderTiming {sorted(beyond)}: no ORDER_* setting")
            rendered |= settings_env(self.timing_settings())
            if kind == "issuer-api":
                # The webhook endpoints' URL checks: make run's sample receiver is on loopback.
                rendered |= settings_env(self.issuer_api_settings()) | settings_env(self.events_settings())
        return rendered

    def base_env(self) -> dict[str, str]:
        return {
            **base_environment(os.environ),
            "TEMPORAL_CONFIG_FILE": str(self.paths.temporal_profile),
            "PYTHONUNBUFFERED": "1",
        }

    def env(self, kind: ProcessKind, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**self.base_env(), **self.variables(kind), **(extra or {})}

    def argv(self, kind: ProcessKind, *, python: str = sys.executable) -> list[str]:
        commands: dict[str, list[str]] = {
            "worker": [python, str(REPO_ROOT / "worker.py")],
            "receiver": [python, "-m", "receiver"],
            "emulator": [python, "-m", "emulator", "--log-level", self.spec.emulator.log_level],
            "codec-server": [python, "-m", "security.codec_server"],
            "starter": [python, "-m", "starter"],
            "issuer-api": [python, "-m", "issuer_api"],
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
        """With the UI, its codec endpoint carries no credential: ``GET /api/v1/settings`` shows
        it to anyone, and the command line is in every process list. The embedded UI cannot
        authenticate, hence the codec server's dev-loopback mode."""
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

    def notifier_ssl(self) -> ssl.SSLContext | None:
        """The tenant's D1 notifier certificate: the receiver checks it; the emulator's TLS
        layer accepts any certificate of the CA."""
        if self.pki is None:
            return None
        pair = self.pki.notifier_client(self.spec.issuer_id)
        return client_ssl_context(ca_file=self.pki.ca_cert, cert_file=pair.cert, key_file=pair.key)

    def verify(self) -> ssl.SSLContext | bool:
        return self.notifier_ssl() or True

    def oauth_client(self) -> tuple[str, str] | None:
        if not self.spec.oauth:
            return None
        return OAUTH_CLIENT_ID, read_secret(self.paths.oauth_client_secret, None, what="outbound OAuth secret")

    async def connect(
        self,
        *,
        interceptors: Sequence[Interceptor] | None = None,
        runtime: Runtime | None = None,
        sealer: str | None = None,
        issued: bool = False,
    ) -> Client:
        """No profile, variable or API key of this process: the stack's address and codec keys,
        the authority ring sealing as ``sealer`` (default the workers). ``issued``: only the file
        issued to ``sealer`` (``edge``, ``receiver``, ``operator:<name>``), as that process holds
        it: it seals as its holder and opens nothing the workers sealed."""
        from temporalio.client import Client

        from observability.tracing import client_interceptors
        from security.codec import load_codec
        from temporal_client import data_converter

        if issued:
            if sealer is None:
                raise ValueError("issued=True needs the sealer whose file to use")
            codec = load_codec(self.paths.issued_keys(sealer))
        else:
            codec = load_codec(self.paths.codec_keys, seal_as=sealer)
        return await Client.connect(
            self.temporal_address,
            namespace=self.spec.namespace,
            data_converter=data_converter(codec),
            interceptors=client_interceptors() if interceptors is None else interceptors,
            runtime=runtime,
            tls=False,
        )
