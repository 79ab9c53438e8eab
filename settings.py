"""Every setting the issuer-side processes read, from environment variables.

One class per concern, each with its own prefix, so a deployment (see docker-compose.yml)
can be checked against this file: a variable it sets must be a field here. Secrets are
never values here, only the *paths* of files that hold them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from temporalio.envconfig import ClientConfigProfile

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_STATE_DIR = REPO_ROOT / ".state"


DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"  # the dev server of `make run` and the tests
DEFAULT_TEMPORAL_NAMESPACE = "default"
_TEMPORAL_BOOLEANS = ("true", "false", "1", "0")  # what the SDK parses (case-insensitive)


class TemporalConfigError(ValueError):
    """Temporal's client configuration cannot be used; the message names the variable or file."""


def temporal_config_file() -> str:
    """The TOML file Temporal's configuration is read from (for messages)."""
    return os.environ.get("TEMPORAL_CONFIG_FILE") or "~/.config/temporalio/temporal.toml (the default)"


def load_temporal_profile() -> ClientConfigProfile:
    """Temporal's standard client configuration, exactly as the ``temporal`` CLI reads it.

    The profile ``TEMPORAL_PROFILE`` (else "default") of the TOML file ``TEMPORAL_CONFIG_FILE``
    (else ``~/.config/temporalio/temporal.toml``, if present), with the ``TEMPORAL_*``
    variables on top; loaded by the SDK (:mod:`temporalio.envconfig`). Two mistakes the SDK
    and the CLI let pass silently fail here instead: a ``TEMPORAL_CONFIG_FILE`` that does not
    exist (both carry on without any profile) and a ``TEMPORAL_TLS`` that is not a boolean
    (the SDK turns TLS *on* for "off" or "no", the CLI turns it *off* for "yes").
    """
    config_file = os.environ.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise TemporalConfigError(f"TEMPORAL_CONFIG_FILE={config_file}: no such file")
    tls = os.environ.get("TEMPORAL_TLS")
    if tls is not None and tls.lower() not in _TEMPORAL_BOOLEANS:
        raise TemporalConfigError(f"TEMPORAL_TLS={tls!r}: expected true or false")
    # Imported on use: not every process that reads settings talks to Temporal.
    from temporalio.envconfig import ClientConfigProfile

    try:
        return ClientConfigProfile.load()
    except RuntimeError as err:  # the SDK's ConfigError: unreadable TOML, unknown profile, path and data both set
        profile = os.environ.get("TEMPORAL_PROFILE") or "default"
        raise TemporalConfigError(
            f"Temporal client configuration (profile {profile!r} of {temporal_config_file()} "
            f"and the TEMPORAL_* variables): {err}"
        ) from None


def _configured_address() -> str:
    return load_temporal_profile().address or DEFAULT_TEMPORAL_ADDRESS


def _configured_namespace() -> str:
    return load_temporal_profile().namespace or DEFAULT_TEMPORAL_NAMESPACE


class TemporalSettings(BaseSettings):
    """The product's task queue, and where Temporal is.

    How to reach Temporal is Temporal's own client configuration, shared with the ``temporal``
    CLI (README "Connecting to Temporal"): ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
    ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE``, ``TEMPORAL_CONFIG_FILE``
    and the TOML profile (:func:`load_temporal_profile`); ``temporal_client.connect_config``
    takes TLS and the API key from it. ``address`` and ``namespace`` are what it resolves to
    (else the dev server's ``127.0.0.1:7233`` / ``default``); a caller may pass them to
    override it (tests, the stack launcher). Only ``TEMPORAL_TASK_QUEUE`` is the product's own.
    """

    model_config = SettingsConfigDict(env_prefix="TEMPORAL_", extra="ignore")

    # pydantic also reads TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE into these: the same value the
    # SDK gives them (a variable wins over the TOML profile in both).
    address: str = Field(default_factory=_configured_address)
    namespace: str = Field(default_factory=_configured_namespace)
    task_queue: str = "d1-card-orders"


class D1ClientSettings(BaseSettings):
    """How the issuer side reaches D1 (or the emulator) and proves who it is."""

    model_config = SettingsConfigDict(env_prefix="D1_", extra="ignore")

    issuer_id: str = "TESTISS001"
    banking_url: str = "https://127.0.0.1:8443/banking/v1"
    authz_url: str = "https://127.0.0.1:8443/authz/v1"
    # Mutual TLS toward D1 (docs/d1/auth.md §2): our client certificate (signed by the Thales CA,
    # CN embeds the issuerId) and the CA bundle D1's server certificate must chain to
    # (None = the system roots). Required for https:// URLs; see security/transport.py.
    tls_client_cert_file: Path | None = None
    tls_client_key_file: Path | None = None
    tls_ca_file: Path | None = None
    # Development only: allow http:// D1 URLs (no TLS at all). Logged loudly at start.
    allow_plaintext: bool = False
    # ES256 private key (JWK JSON or PEM) that signs the token assertion, and its kid
    # as registered with D1 at onboarding.
    signing_key_file: Path = DEFAULT_STATE_DIR / "issuer" / "assertion-signing-key.jwk"
    signing_kid: str | None = None
    # D1's P-256 public key for encryptedData (JWK JSON with kid), given at onboarding;
    # read by the starter (the edge encrypts), never by a worker.
    encryption_public_key_file: Path = DEFAULT_STATE_DIR / "emulator" / "d1-encryption-public.jwk"
    token_audience: str | None = "https://api.d1.thalescloud.io"  # noqa: S105 - an audience URL
    assertion_lifetime_s: int = Field(default=300, ge=30, le=900)
    # Refresh the cached token this long before D1 says it expires.
    token_refresh_margin_s: int = Field(default=60, ge=0)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    # The program configuration fixed at onboarding (card products, shipping methods,
    # countries, expiry format...): see d1/program.py and README "The program configuration".
    program_file: Path = REPO_ROOT / "config" / "program.json"
    # "YYMM" (physical-issuance guides) or "MMYY" (generic encryption page). Unset: the
    # program file's cardData.expiryFormat decides; set: overrides it.
    expiry_format: str | None = Field(default=None, pattern="^(YYMM|MMYY)$")


class OrderTimingSettings(BaseSettings):
    """Durations the workflow waits; copied into each order at start (replay-safe)."""

    model_config = SettingsConfigDict(env_prefix="ORDER_", extra="ignore")

    # No notification for this long: ask D1's productionStatus (reconciliation).
    reconcile_after: timedelta = timedelta(hours=24)
    # After CARD_SHIPPED, finish when carrier tracking stays quiet this long.
    quiet_after_shipped: timedelta = timedelta(days=30)
    # After a terminal update, keep accepting stragglers this long before closing.
    close_grace: timedelta = timedelta(minutes=10)


class D1BatchSettings(BaseSettings):
    """Grouping orders into calls of D1's batch "Order cards" API (starter/d1_batch.py)."""

    model_config = SettingsConfigDict(env_prefix="D1_BATCH_", extra="ignore")

    # Cards per D1 call: D1 documents 1 to 1,000 (the program's interface.batchMaxCards caps it).
    max_cards: int = Field(default=1000, ge=1, le=1000)
    # D1 items per call, in bytes: one batch is one Temporal payload, whose size Temporal limits
    # (2 MB by default); the margin covers the encryption and the rest of the input.
    max_bytes: int = Field(default=1_500_000, ge=10_000, le=1_900_000)
    # Orders that arrive one at a time (the Python API's D1Batcher) wait at most this long.
    max_wait: timedelta = timedelta(seconds=2)


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECEIVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Bodies larger than this are refused with 413 before parsing.
    max_body_bytes: int = 1_048_576
    # The most updates one notification may carry: agreed with Thales at onboarding
    # (docs/d1/notifications.md); more is refused with 413.
    max_operations: int = Field(default=1000, ge=1, le=100_000)
    # One line per request at 200/s costs ~5% of the receiver's CPU (docs/benchmarks.md);
    # routing problems are logged either way.
    access_log: bool = False
    # Mutual TLS (D1 → issuer is mTLS-only, docs/d1/auth.md §2, §6): our server certificate, and the
    # CA that D1's client certificates must chain to. See receiver/auth.py.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # The identity (SAN URI, SAN DNS or CN) D1's client certificate must carry to post
    # notifications for {issuerId} (security/tls.py). Without {issuerId}: one fixed identity.
    tls_client_identity: str = "urn:d1:notifier:{issuerId}"
    # Development only: serve plain HTTP, no client certificates. Logged loudly at start.
    allow_plaintext: bool = False
    # Outbound OAuth (optional D1 tenant setting, docs/d1/auth.md §6): D1 first gets a token from
    # our client-credentials endpoint (POST /oauth2/token, HTTP Basic) and then sends it as
    # a bearer token with every notification.
    oauth_enabled: bool = False
    oauth_client_id: str | None = None
    # The client secret: from this file, or else from RECEIVER_OAUTH_CLIENT_SECRET.
    oauth_client_secret_file: Path | None = None
    oauth_client_secret: SecretStr | None = None
    # The scopes the token endpoint grants (space-separated); a token request may ask for
    # part of them. A notification needs a token whose scope includes the notification scope.
    oauth_scope: str = "d1-notifications"
    oauth_notification_scope: str = "d1-notifications"
    oauth_token_lifetime_s: int = Field(default=900, ge=60, le=86_400)
    # Operator credentials for GET /_receiver/stats, one "name:token" per line (the codec
    # server's format), sent as "Authorization: Bearer <token>". Unset: the route answers 404.
    operator_tokens_file: Path | None = None


class CodecSettings(BaseSettings):
    """Payload encryption at rest in Temporal (see security/codec.py)."""

    model_config = SettingsConfigDict(env_prefix="CODEC_", extra="ignore")

    keys_file: Path = DEFAULT_STATE_DIR / "codec-keys.json"
    # Turning this off leaves payloads (ids, addresses, order state) in clear in Temporal and
    # lets any client signal orders: development only, logged loudly.
    enabled: bool = True
    # Migration only: accept payloads not sealed by the codec (a namespace that ran without
    # it). Off, such payloads are refused: nobody without the keys can change an order.
    accept_unencrypted: bool = False


class CodecServerSettings(BaseSettings):
    """The codec server the Temporal UI and CLI call to read payloads (security/codec_server.py).

    Callers authenticate with an ``Authorization: Bearer`` header only: an OIDC access token
    the Temporal UI forwards (``OIDC_*``), or a static operator token (the CLI). At least one
    of OIDC, static tokens or the loopback development mode must be configured.
    """

    model_config = SettingsConfigDict(env_prefix="CODEC_SERVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8234
    # SSO: the access token the Temporal UI forwards (TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true),
    # verified against this issuer ("iss", exact), audience (one of "aud") and its JWKS: a
    # file (works offline) and/or an https:// URL (fetched, cached, re-fetched on unknown kid).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_file: Path | None = None
    oidc_jwks_url: str | None = None
    # The claim holding the operator's roles (a list, or a space-separated string; a dotted
    # name such as "realm_access.roles" reaches into an object), and the role that may see
    # names and addresses unmasked. Card data is masked for everyone.
    oidc_roles_claim: str = "roles"
    oidc_pii_role: str = "card-orders-pii"
    # Clock skew tolerated on exp / nbf / iat.
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    # Static operator credentials (the CLI: TEMPORAL_CODEC_AUTH="Bearer <token>"), one
    # "name:token [role ...]" per line. Only ever accepted as an Authorization header.
    operator_tokens_file: Path | None = None
    # Development only (make run): the dev server's UI cannot authenticate, so trust
    # browser requests from loopback with an allowed Origin. Refused unless `host` is a
    # loopback address; PII is always masked; announced loudly at start.
    dev_trust_loopback: bool = False
    # Origins of the Temporal UI allowed to call it from the browser (CORS).
    cors_origins: list[str] = ["http://localhost:8233", "http://127.0.0.1:8233"]
    # HTTPS for the codec server itself (the UI only passes SSO tokens to https endpoints).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Mask names and addresses for everyone, whatever their roles (card data is always masked).
    mask_pii: bool = False


class TelemetrySettings(BaseSettings):
    """Logs, metrics and tracing of every issuer-side process (see observability/).

    Tracing itself follows the standard OpenTelemetry variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_SDK_DISABLED``, ...):
    spans are exported over OTLP when an endpoint is set, and not at all otherwise.
    """

    model_config = SettingsConfigDict(env_prefix="TELEMETRY_", extra="ignore")

    # "text" for people at a terminal, "json" (one object per line) for log collectors.
    log_format: str = Field(default="text", pattern="^(text|json)$")
    log_level: str = "INFO"
    # Prometheus /metrics (Temporal SDK metrics and the product's counters) on this port;
    # unset = no metrics endpoint.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Print spans on stdout (development), with or without an OTLP endpoint.
    console_traces: bool = False
