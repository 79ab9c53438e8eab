"""Every setting the issuer-side processes read, from environment variables.

One class per concern, each with its own prefix, so a deployment (see docker-compose.yml)
can be checked against this file: a variable it sets must be a field here. Secrets are
never values here, only the *paths* of files that hold them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_STATE_DIR = REPO_ROOT / ".state"


class TemporalSettings(BaseSettings):
    """Where the Temporal server is (``TEMPORAL_ADDRESS`` is also the CLI's own variable)."""

    model_config = SettingsConfigDict(env_prefix="TEMPORAL_", extra="ignore")

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "d1-card-orders"


class D1ClientSettings(BaseSettings):
    """How the issuer side reaches D1 (or the emulator) and proves who it is."""

    model_config = SettingsConfigDict(env_prefix="D1_", extra="ignore")

    issuer_id: str = "TESTISS001"
    banking_url: str = "https://127.0.0.1:8443/banking/v1"
    authz_url: str = "https://127.0.0.1:8443/authz/v1"
    # Mutual TLS toward D1 (auth.md §1): our client certificate (signed by the Thales CA,
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
    # D1's P-256 public key for encryptedData (JWK JSON with kid), given at onboarding.
    encryption_public_key_file: Path = DEFAULT_STATE_DIR / "emulator" / "d1-encryption-public.jwk"
    token_audience: str | None = "https://api.d1.thalescloud.io"  # noqa: S105 - an audience URL
    assertion_lifetime_s: int = Field(default=300, ge=30, le=900)
    # Refresh the cached token this long before D1 says it expires.
    token_refresh_margin_s: int = Field(default=60, ge=0)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    # The program configuration fixed at onboarding (card products, shipping methods,
    # countries, expiry format...): see d1/program.py and README "Program configuration".
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


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECEIVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    # Bodies larger than this are refused with 413 before parsing.
    max_body_bytes: int = 1_048_576
    # One line per request at 200/s costs ~5% of the receiver's CPU (docs/benchmarks.md);
    # routing problems are logged either way.
    access_log: bool = False
    # Mutual TLS (D1 → issuer is mTLS-only, auth.md §1/§5): our server certificate, and the
    # CA that D1's client certificates must chain to. See receiver/auth.py.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # The identity (SAN URI, SAN DNS or CN) D1's client certificate must carry to post
    # notifications for {issuerId} (security/tls.py). Without {issuerId}: one fixed identity.
    tls_client_identity: str = "urn:d1:notifier:{issuerId}"
    # Development only: serve plain HTTP, no client certificates. Logged loudly at start.
    allow_plaintext: bool = False
    # Outbound OAuth (optional D1 tenant setting, auth.md §5): D1 first gets a token from
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


class StateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="D1O_", extra="ignore")

    state_dir: Path = DEFAULT_STATE_DIR


class CodecSettings(BaseSettings):
    """Payload encryption at rest in Temporal (see security/codec.py)."""

    model_config = SettingsConfigDict(env_prefix="CODEC_", extra="ignore")

    keys_file: Path = DEFAULT_STATE_DIR / "codec-keys.json"
    # Turning this off stores card data in clear in Temporal: development only, logged loudly.
    enabled: bool = True


class CodecServerSettings(BaseSettings):
    """The codec server the Temporal UI and CLI call to read payloads (security/codec_server.py)."""

    model_config = SettingsConfigDict(env_prefix="CODEC_SERVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8234
    # Operator credentials, one "name:token" per line; a caller presents a token as
    # "Authorization: Bearer <token>" (CLI --codec-auth) or in the endpoint path.
    operator_tokens_file: Path = DEFAULT_STATE_DIR / "secrets" / "codec-operators"
    # Origins of the Temporal UI allowed to call it from the browser (CORS).
    cors_origins: list[str] = ["http://localhost:8233", "http://127.0.0.1:8233"]
    # HTTPS for the codec server itself (the UI only passes SSO tokens to https endpoints).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Also mask names and addresses for operators (card data is always masked).
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
