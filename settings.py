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
    """`TEMPORAL_*`: the product's task queue, and where Temporal is.

    How to reach Temporal is Temporal's own client configuration, shared with the ``temporal``
    CLI (docs/operations.md, "Connecting to Temporal"): ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
    ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE``, ``TEMPORAL_CONFIG_FILE``
    and the TOML profile (:func:`load_temporal_profile`); ``temporal_client.connect_config``
    takes TLS and the API key from it. ``address`` and ``namespace`` are what it resolves to
    (else the dev server's ``127.0.0.1:7233`` / ``default``); a caller may pass them to
    override it (tests, the stack launcher). Only ``TEMPORAL_TASK_QUEUE`` is the product's own.
    """

    model_config = SettingsConfigDict(env_prefix="TEMPORAL_", extra="ignore", use_attribute_docstrings=True)

    # pydantic also reads TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE into these: the same value the
    # SDK gives them (a variable wins over the TOML profile in both).
    address: str = Field(default_factory=_configured_address)
    """Frontend `host:port`: from Temporal's client configuration (the variable, else the TOML profile),
    else `127.0.0.1:7233`."""
    namespace: str = Field(default_factory=_configured_namespace)
    """Namespace: from Temporal's client configuration (the variable, else the TOML profile), else `default`."""
    task_queue: str = "d1-card-orders"
    """The task queue of the product's workers (the product's own setting, not the `temporal` CLI's)."""


class D1ClientSettings(BaseSettings):
    """`D1_*`: how the issuer side reaches D1 (or the emulator) and proves who it is."""

    model_config = SettingsConfigDict(env_prefix="D1_", extra="ignore", use_attribute_docstrings=True)

    issuer_id: str = "TESTISS001"
    """The issuerId Thales assigned at onboarding."""
    banking_url: str = "https://127.0.0.1:8443/banking/v1"
    """Base URL of D1's banking API (worker); the default is the local emulator."""
    authz_url: str = "https://127.0.0.1:8443/authz/v1"
    """Base URL of D1's authorization server, where the worker gets its access token."""
    tls_client_cert_file: Path | None = None
    """Our client certificate toward D1 (mutual TLS, docs/d1/auth.md §2): signed by the Thales CA
    from our CSR, its CN embeds the issuerId. Required for `https://` URLs (security/transport.py)."""
    tls_client_key_file: Path | None = None
    """The private key of that client certificate."""
    tls_ca_file: Path | None = None
    """CA bundle D1's server certificate must chain to; unset: the system roots."""
    allow_plaintext: bool = False
    """Development only: allow `http://` D1 URLs (no TLS at all); logged loudly at start."""
    signing_key_file: Path = DEFAULT_STATE_DIR / "issuer" / "assertion-signing-key.jwk"
    """ES256 private key (JWK JSON or PEM) that signs the token request's assertion (worker)."""
    signing_kid: str | None = None
    """The kid of that key as registered with D1 at onboarding; unset: the key's own `kid`."""
    encryption_public_key_file: Path = DEFAULT_STATE_DIR / "emulator" / "d1-encryption-public.jwk"
    """D1's public key for `encryptedData`, given at onboarding: a JWK, EC P-256, with D1's `kid`;
    anything else (a PEM file, which has no `kid`) is refused when it is read. Read by the starter,
    which encrypts at the edge (never by a worker), and read again whenever the file changes."""
    encryption_key_kids: list[str] = []
    """Pinning of D1's encryption key: the `kid`s it may carry (a JSON list, e.g. `["d1-enc-2026"]`).
    Set, a key file with another `kid` is refused when it is read; with a rotation, list both keys."""
    encryption_key_thumbprints: list[str] = []
    """Pinning of D1's encryption key: the RFC 7638 SHA-256 thumbprints (base64url) it may have, a JSON
    list; set, a key file with another public key is refused when it is read (docs/security.md)."""
    dev_allow_clear_track_data: bool = False
    """Development only: let a program whose `interface.trackDataPlacement` is `clear` put full track
    data into the workflow input (Temporal) in clear; off, such a program is refused at the edge.
    Logged loudly when on."""
    token_audience: str | None = "https://api.d1.thalescloud.io"  # noqa: S105 - an audience URL
    """The `aud` claim of the token assertion (D1 does not document it); set it empty to omit the claim."""
    assertion_lifetime_s: int = Field(default=300, ge=30, le=900)
    """Lifetime of the token assertion, in seconds."""
    token_refresh_margin_s: int = Field(default=60, ge=0)
    """Refresh the cached access token this many seconds before D1 says it expires."""
    connect_timeout_s: float = 5.0
    """Connect timeout of every call to D1, in seconds."""
    read_timeout_s: float = 15.0
    """Read timeout of every call to D1, in seconds."""
    program_file: Path = REPO_ROOT / "config" / "program.json"
    """The program configuration fixed at onboarding (card products, shipping methods, countries,
    expiry format, ...) with its `interface` answers; read by the starter and the worker
    (d1/program.py, docs/order-format.md)."""
    expiry_format: str | None = Field(default=None, pattern="^(YYMM|MMYY)$")
    """How `exp` and `effectiveDate` are read: `YYMM` (physical-issuance guides) or `MMYY` (generic
    encryption page). Unset: the program file's `cardData.expiryFormat` decides; set: overrides it."""


class OrderTimingSettings(BaseSettings):
    """`ORDER_*`: durations the workflow waits.

    Read by the starter and copied into each order when it starts (replay-safe): a change
    applies to orders started afterwards.
    """

    model_config = SettingsConfigDict(env_prefix="ORDER_", extra="ignore", use_attribute_docstrings=True)

    reconcile_after: timedelta = timedelta(hours=24)
    """No notification for this long: ask D1's `productionStatus` (reconciliation)."""
    quiet_after_shipped: timedelta = timedelta(days=30)
    """After `CARD_SHIPPED`, finish as `SHIPPED` when carrier tracking stays quiet this long."""
    close_grace: timedelta = timedelta(minutes=10)
    """After the outcome, late notifications still join the timeline this long before the order closes."""
    events: bool = True
    """The order announces its milestones to the issuer's webhooks and event feed (docs/events.md);
    `false`: it emits nothing at all (no history cost)."""


class D1BatchSettings(BaseSettings):
    """`D1_BATCH_*`: how the starter groups orders into D1's batch "Order cards" calls (starter/d1_batches.py)."""

    model_config = SettingsConfigDict(env_prefix="D1_BATCH_", extra="ignore", use_attribute_docstrings=True)

    max_cards: int = Field(default=1000, ge=1, le=1000)
    """Cards per D1 call: D1 documents 1 to 1,000 (the program's `interface.batchMaxCards` caps it too)."""
    # The margin below Temporal's limit covers the encryption and the rest of the input.
    max_bytes: int = Field(default=1_500_000, ge=10_000, le=1_900_000)
    """Bytes of D1 items per call: one batch is one Temporal payload, whose size Temporal limits (2 MB by default)."""
    max_wait: timedelta = timedelta(seconds=2)
    """How long the first of orders arriving one at a time waits for its batch to fill."""


class ReceiverSettings(BaseSettings):
    """`RECEIVER_*`: the notification receiver (D1 → workflow signals, receiver/)."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address the receiver listens on."""
    port: int = 8080
    """Port the receiver listens on."""
    max_body_bytes: int = 1_048_576
    """Largest notification body; a larger one is refused with 413 before parsing."""
    max_operations: int = Field(default=1000, ge=1, le=100_000)
    """The most updates one notification may carry, agreed with Thales at onboarding
    (docs/d1/notifications.md); more is refused with 413."""
    # One line per request at 200/s costs ~5% of the receiver's CPU (docs/benchmarks.md);
    # routing problems are logged either way.
    access_log: bool = False
    """One log line per request."""
    tls_cert_file: Path | None = None
    """The receiver's HTTPS server certificate (D1 → issuer is mutual TLS only, docs/d1/auth.md §2, §6).
    The three `RECEIVER_TLS_*_FILE` go together, required unless `RECEIVER_ALLOW_PLAINTEXT`."""
    tls_key_file: Path | None = None
    """The private key of that server certificate."""
    tls_client_ca_file: Path | None = None
    """The CA that D1's client certificates must chain to (receiver/auth.py)."""
    tls_client_identity: str = "urn:d1:notifier:{issuerId}"
    """The identity (SAN URI, SAN DNS or CN) D1's client certificate must carry to post notifications
    for `{issuerId}` (security/tls.py); without `{issuerId}`: one fixed identity for every issuer."""
    allow_plaintext: bool = False
    """Development only: serve plain HTTP, without client certificates; logged loudly at start."""
    oauth_enabled: bool = False
    """Outbound OAuth (a D1 tenant option, docs/d1/auth.md §6): host the client-credentials token
    endpoint `POST /oauth2/token` (HTTP Basic) and require one of its bearer tokens on every notification."""
    oauth_client_id: str | None = None
    """The client id D1 uses at the token endpoint."""
    oauth_client_secret_file: Path | None = None
    """File holding the client secret (else `RECEIVER_OAUTH_CLIENT_SECRET`)."""
    oauth_client_secret: SecretStr | None = None
    """The client secret itself, when no file is given."""
    oauth_scope: str = "d1-notifications"
    """The scopes the token endpoint grants (space-separated); a token request may ask for part of them."""
    oauth_notification_scope: str = "d1-notifications"
    """The scope a notification's token must include."""
    oauth_token_lifetime_s: int = Field(default=900, ge=60, le=86_400)
    """Lifetime of the tokens the endpoint issues, in seconds."""
    operator_tokens_file: Path | None = None
    """Operator credentials for `GET /_receiver/stats`, one `name:token` per line (the codec server's
    format), sent as `Authorization: Bearer <token>`. Unset: the route answers 404."""
    cms_activation_url: str | None = None
    """The bank's card management system endpoint that activates a card, with `{issuerId}` and
    `{cardId}` (receiver/activation.py). Set, the receiver serves D1's Card Activation call and
    forwards each activation there; unset, that call answers 404. HTTPS unless `RECEIVER_ALLOW_PLAINTEXT`."""
    cms_token_file: Path | None = None
    """File holding the bearer token the receiver presents to the bank's CMS (re-read on each call)."""
    cms_ca_file: Path | None = None
    """The CA the CMS's server certificate must chain to (default: the system's CAs)."""
    cms_client_cert_file: Path | None = None
    """A client certificate for the CMS, when it asks for mutual TLS (with `RECEIVER_CMS_CLIENT_KEY_FILE`)."""
    cms_client_key_file: Path | None = None
    """The private key of that client certificate."""
    cms_timeout_s: float = Field(default=10.0, gt=0, le=60)
    """How long the receiver waits for the CMS; longer is answered to D1 as unavailable (D1 retries)."""
    program_file: Path = REPO_ROOT / "config" / "program.json"
    """The program configuration; the receiver reads `lifecycle.refuseActivationBeforeDelivery` (d1/program.py)."""


class IssuerApiSettings(BaseSettings):
    """`ISSUER_API_*`: the issuer API, the HTTP door to the edge (issuer_api/, docs/issuer-api.md).
    It encrypts card data for D1 with the `D1_*` key and program files, as the starter does."""

    model_config = SettingsConfigDict(env_prefix="ISSUER_API_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address the API listens on."""
    port: int = 8445
    """Port the API listens on."""
    tls_cert_file: Path | None = None
    """The API's HTTPS server certificate. The three `ISSUER_API_TLS_*_FILE` go together, required
    unless `ISSUER_API_ALLOW_PLAINTEXT`."""
    tls_key_file: Path | None = None
    """The private key of that server certificate."""
    tls_client_ca_file: Path | None = None
    """The CA that the issuer systems' client certificates must chain to (mutual TLS)."""
    tls_client_identity: str = "urn:d1:issuer:{issuerId}"
    """The identity (SAN URI, SAN DNS or CN) a client certificate must carry to act for `{issuerId}`;
    a certificate naming several issuers may act for each of them (security/tls.py)."""
    allow_plaintext: bool = False
    """Development only: serve plain HTTP, without client certificates; logged loudly at start."""
    oauth_issuer: str | None = None
    """The OAuth 2.0 authorization server whose JWT access tokens the API accepts (`iss`); with
    `_AUDIENCE` and `_JWKS_FILE` or `_JWKS_URL`, every call needs a bearer token as well."""
    oauth_audience: str | None = None
    """The audience (`aud`) the tokens must name."""
    oauth_jwks_file: Path | None = None
    """The authorization server's public keys (JWKS), from a file."""
    oauth_jwks_url: str | None = None
    """The authorization server's public keys (JWKS), fetched (https://; http:// only on loopback)."""
    oauth_leeway_s: int = Field(default=30, ge=0, le=300)
    """Clock skew allowed on `exp`, `nbf` and `iat`."""
    oauth_issuers_claim: str = "issuer_ids"
    """A claim listing the issuerIds the token may act for; absent: the certificate decides."""
    oauth_person_claim: str = "preferred_username"
    """The claim naming the person behind a call (recorded with orders and changes), when there is one."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest body of one order or change; larger is refused with 413 before parsing."""
    max_batch_bytes: int = Field(default=10_485_760, ge=1024)
    """Largest body of `POST card-order-batches`; larger is refused with 413."""
    max_batch_orders: int = Field(default=1000, ge=1, le=100_000)
    """The most orders one batch may hold; more is refused with 413."""
    temporal_concurrency: int = Field(default=64, ge=1)
    """Calls to Temporal in flight at once; a request waiting longer than `_SHED_AFTER_S` for one is
    answered 429 with `Retry-After` (load shedding)."""
    shed_after_s: float = Field(default=2.0, ge=0)
    """How long a request waits for a Temporal slot before it is shed."""
    request_timeout_s: float = Field(default=30.0, gt=0)
    """The longest a request may take; then 503 with `Retry-After`."""
    page_size: int = Field(default=50, ge=1, le=1000)
    """Orders per page of `GET card-orders` unless `limit` asks for another size."""
    access_log: bool = False
    """One log line per request."""


class CodecSettings(BaseSettings):
    """`CODEC_*`: payload encryption at rest in Temporal (security/codec.py)."""

    model_config = SettingsConfigDict(env_prefix="CODEC_", extra="ignore", use_attribute_docstrings=True)

    keys_file: Path = DEFAULT_STATE_DIR / "codec-keys.json"
    """The payload-codec keys of this process (the form is in security/codec.py; `python -m
    security.keys_tool` makes them): workers and the codec server hold the authority ring, every other
    process or operator a file issued to it, which seals as that role or that operator only."""
    dev_operator: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    """Development only: with the authority ring as `CODEC_KEYS_FILE`, the operator the CLI's operator
    commands seal as (`operator:<name>`); logged loudly. Unset, the CLI refuses operator commands unless
    its keys file was issued to an operator (docs/security.md, "Operators are named")."""
    accept_unencrypted: bool = False
    """Migration only: accept payloads the codec did not seal (a namespace that ran without it). Off, they
    are refused, so nobody without the keys can start, signal or change an order."""


class CodecServerSettings(BaseSettings):
    """`CODEC_SERVER_*`: the codec server the Temporal UI and CLI call to read payloads (security/codec_server.py).

    Callers authenticate with an ``Authorization: Bearer`` header only: an OIDC access token
    the Temporal UI forwards (``OIDC_*``), or a static operator token (the CLI). At least one
    of OIDC, static tokens or the loopback development mode must be configured
    (docs/security.md, "Codec server").
    """

    model_config = SettingsConfigDict(env_prefix="CODEC_SERVER_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address the codec server listens on."""
    port: int = 8234
    """Port the codec server listens on."""
    oidc_issuer: str | None = None
    """SSO: the issuer (`iss`, exact) of the access token the Temporal UI forwards
    (`TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true`)."""
    oidc_audience: str | None = None
    """SSO: the audience the access token must carry (one of `aud`)."""
    oidc_jwks_file: Path | None = None
    """SSO: the issuer's JWKS from a file (works offline)."""
    oidc_jwks_url: str | None = None
    """SSO: the issuer's JWKS from an `https://` URL (fetched, cached, fetched again for an unknown kid)."""
    oidc_roles_claim: str = "roles"
    """The claim holding the operator's roles: a list or a space-separated string; a dotted name such as
    `realm_access.roles` reaches into an object."""
    oidc_read_role: str = "card-orders-read"
    """The role that may have payloads decoded at all (in the roles claim of an SSO token, or listed after a
    static token); anyone else gets 403. The development loopback mode needs none."""
    oidc_pii_role: str = "card-orders-pii"
    """The role that may see names and addresses unmasked (card data is masked for everyone)."""
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    """Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds."""
    operator_tokens_file: Path | None = None
    """Static operator credentials (the CLI: `TEMPORAL_CODEC_AUTH="Bearer <token>"`), one
    `name:token [role ...]` per line (the read role among them to decode); only ever accepted as an
    `Authorization` header."""
    dev_trust_loopback: bool = False
    """Development only (`make run`): the dev server's UI cannot sign anyone in, so trust browser requests
    from loopback with an allowed `Origin`. Refused unless the host is a loopback address; PII is always
    masked; announced loudly at start."""
    cors_origins: list[str] = ["http://localhost:8233", "http://127.0.0.1:8233"]
    """Origins of the Temporal UI allowed to call it from the browser (CORS), as a JSON list."""
    tls_cert_file: Path | None = None
    """HTTPS certificate of the codec server (the UI passes SSO tokens to `https://` endpoints only)."""
    tls_key_file: Path | None = None
    """The private key of that certificate."""
    mask_pii: bool = False
    """Mask names and addresses for everyone, whatever their roles (card data is always masked)."""


class TelemetrySettings(BaseSettings):
    """`TELEMETRY_*`: logs, metrics and tracing of every issuer-side process (observability/).

    Tracing itself follows the standard OpenTelemetry variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_SDK_DISABLED``, ...):
    spans are exported over OTLP when an endpoint is set, and not at all otherwise.
    """

    model_config = SettingsConfigDict(env_prefix="TELEMETRY_", extra="ignore", use_attribute_docstrings=True)

    log_format: str = Field(default="text", pattern="^(text|json)$")
    """`text` for people at a terminal, `json` (one object per line) for log collectors."""
    log_level: str = "INFO"
    """The root log level (DEBUG, INFO, WARNING, ...)."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve Prometheus `/metrics` (Temporal SDK metrics and the product's counters) on this port;
    unset: no metrics endpoint."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint listens on."""
    console_traces: bool = False
    """Also print spans on stdout (development), with or without an OTLP endpoint."""


class AuditSettings(BaseSettings):
    """`AUDIT_*`: the audit log of operator actions (observability/audit.py)."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", use_attribute_docstrings=True)

    log_file: Path | None = None
    """Append one JSON line per operator action (who, what, which order, when, result) to this file, created
    0600 and never truncated; the worker writes it (workflows/audit.py). Unset: the lines go to the worker's
    log only (logger `audit`)."""


class EventsSettings(BaseSettings):
    """`EVENTS_*`: events out, webhooks to the issuer's endpoints and the event feed (events/, docs/events.md).

    Read by the worker (emission, delivery) and by whatever manages endpoints (the URL checks);
    the delivery policy travels with each batch of events to the issuer's event hub, so a
    change applies from the next event on.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTS_", extra="ignore", use_attribute_docstrings=True)

    enabled: bool = True
    """Emit events from the card workflows (`false`: no event, no webhook, an empty feed; one
    local-activity marker per order tells each order so)."""
    allow_loopback: bool = False
    """Development only: endpoints on loopback, over plain `http://` too (`make run`'s sample receiver)."""
    allowed_networks: list[str] = []
    """Private networks (CIDR, JSON list) an operator allows as webhook targets; refused otherwise."""
    retry_initial: timedelta = timedelta(seconds=5)
    """Wait after a first failed delivery; doubles with each failure up to `EVENTS_RETRY_MAX_INTERVAL`."""
    retry_max_interval: timedelta = timedelta(hours=1)
    """Longest wait between two delivery attempts to a failing endpoint."""
    retry_for: timedelta = timedelta(days=3)
    """An endpoint failing this long is disabled (its backlog is kept: enabling it delivers it)."""
    failing_after: int = Field(default=3, ge=1)
    """Consecutive failed attempts after which an endpoint is marked failing (metric, alert)."""
    request_timeout_s: float = Field(default=10.0, gt=0, le=60)
    """Timeout of one webhook request, in seconds (a slower answer counts as a failure)."""
    batch_size: int = Field(default=100, ge=1, le=500)
    """Events per delivery attempt (one activity) to one endpoint."""
    concurrency: int = Field(default=8, ge=1, le=64)
    """Cards delivered in parallel within one attempt (each card's events stay in order)."""
    flush_interval_ms: int = Field(default=20, ge=0, le=1000)
    """The worker gathers the events of all its orders for this long into one signal to the hub."""
    secret_grace: timedelta = timedelta(hours=24)
    """After a secret rotation, the old secret keeps signing this long."""
