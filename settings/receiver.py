"""`RECEIVER_*`: the notification receiver and D1's Card Activation call."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings.paths import REPO_ROOT


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
    keep_alive_s: int = Field(default=75, ge=1, le=3600)
    """How long an idle connection from D1 stays open. A new connection costs a mutual-TLS handshake
    inside the next acknowledgement (uvicorn's own 5 s made it the tail of the fixed-rate bench,
    docs/benchmarks.md finding 5b); only a caller that completed the handshake holds one."""
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
