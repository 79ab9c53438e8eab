"""`D1_*`, `ORDER_*`, `D1_BATCH_*`: how the issuer side reaches D1, how long an order waits, how
orders are grouped into D1's batch calls."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings.paths import DEFAULT_STATE_DIR, REPO_ROOT


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
