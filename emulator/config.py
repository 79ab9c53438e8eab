"""Every knob of the emulator, read from ``EMULATOR_*`` environment variables.

Values that tests change while the emulator runs (step delay, faults) are not here: they
live in :mod:`emulator.faults` and are set through the admin API.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal, TypedDict

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from security.tls import PeerCertH11Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".state" / "emulator"

NotificationMode = Literal["deliver", "capture"]
ExpiryFormat = Literal["YYMM", "MMYY"]


class EmulatorSettings(BaseSettings):
    """Configuration of one emulator instance (one D1 "environment")."""

    model_config = SettingsConfigDict(env_prefix="EMULATOR_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    # Holds the emulator's JWE key pair; the issuer side reads the public half from here.
    state_dir: Path = DEFAULT_STATE_DIR
    # JWKS ({"keys": [...]}) of the issuers' ES256 *public* keys, each with a "kid" and,
    # preferably, the issuer it was onboarded for as an extra member "issuerId".
    # Re-read when the file changes, so a key created after start-up is picked up.
    issuer_keys_file: Path = DEFAULT_STATE_DIR / "issuer-keys.json"
    # Base URL of the issuer's notification receiver; the D1 notification path is appended.
    receiver_url: str = "http://127.0.0.1:8080"

    # Production simulation.
    step_delay_ms: int = Field(default=500, ge=0)
    shipment_statuses: list[str] = Field(
        default_factory=lambda: ["InfoReceived", "InTransit", "OutForDelivery", "Delivered"], min_length=1
    )
    carrier: str = "dhl"
    production_site: str = "EMU-SITE-01"
    # dueDate = today (UTC) + this many days (the common CREATION SLA is D+1).
    due_in_days: int = Field(default=1, ge=0)

    # Tokens.
    token_lifetime_s: int = Field(default=900, gt=0)

    # Notification delivery.
    notification_mode: NotificationMode = "deliver"
    notify_retry_base_ms: int = Field(default=200, gt=0)
    notify_retry_cap_ms: int = Field(default=30_000, gt=0)
    notify_give_up_s: float = Field(default=86_400, gt=0)
    notify_timeout_s: float = Field(default=10.0, gt=0)
    # Notifications in flight at once (all orders together); more wait for a slot.
    notify_concurrency: int = Field(default=32, ge=1, le=1000)

    # The program configuration D1 holds for the issuer (d1/program.py): products, shipping
    # methods, templates, inserts, images, countries, expiry format, printable names.
    program_file: Path = REPO_ROOT / "config" / "program.json"
    # Overrides the program file's cardData.expiryFormat when set.
    expiry_format: ExpiryFormat | None = None
    # Exception scenarios on demand (emulator/scenarios.py): a JSON list of rules added to the
    # built-in ones (cardId prefixes emu-data-exception-, emu-on-hold-, ...).
    scenarios_file: Path | None = None
    # Pull & change: the last production status at which the personalization center still
    # accepts each type of change (later: refused in the UPDATE_ORDER notification).
    pull_and_change_last_stage: dict[str, str] = Field(
        default_factory=lambda: {
            "CANCEL": "CARD_PROD_DONE",
            "ACCELERATE": "CARD_PROD_ONGOING",
            "REDIRECT": "CARD_PROD_ON_HOLD",
            "ACCELERATE_AND_REDIRECT": "CARD_PROD_ON_HOLD",
        }
    )
    # Carrier of accelerated orders (pull & change ACCELERATE).
    express_carrier: str = "fedex"
    # BULK shipments: a container ships once all its cards are personalized and no new card
    # joined it for this long (adjustable at run time: POST /_emulator/groups).
    bulk_window_ms: int = Field(default=1000, ge=0)

    # Largest request body accepted on the D1 endpoints; the batch "Order cards" API carries
    # up to 1000 cards (each encryptedData up to 8192 characters), so it has its own limit.
    max_body_bytes: int = Field(default=262_144, gt=0)
    batch_max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)

    # The sandbox admin API (/_emulator/..., no authentication) answers only when enabled;
    # /_emulator/health is always served. Off by default: never expose it.
    admin_api_enabled: bool = False

    # TLS: None = plain HTTP. With a certificate and key the emulator serves HTTPS; with a
    # CA file as well it requires client certificates signed by that CA and maps each one
    # to an issuerId (emulator/client_identity.py).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    # Outbound mTLS (D1 → issuer receiver): the client certificate presented to the
    # receiver, per tenant (the paths may contain {issuerId}), and the CA the receiver's
    # server certificate must chain to (default: tls_ca_file, else the system roots).
    notify_client_cert_file: str | None = None
    notify_client_key_file: str | None = None
    notify_ca_file: Path | None = None
    # Outbound OAuth (a D1 tenant option of its outbound API): get a client-credentials token from the
    # issuer (HTTP Basic) and send it as a bearer token with every notification.
    outbound_oauth_token_url: str | None = None
    outbound_oauth_client_id: str | None = None
    outbound_oauth_client_secret: SecretStr | None = None
    outbound_oauth_client_secret_file: Path | None = None
    outbound_oauth_scope: str | None = None

    @field_validator("shipment_statuses")
    @classmethod
    def _no_blank_status(cls, value: list[str]) -> list[str]:
        if any(not s.strip() for s in value):
            raise ValueError("shipment statuses must be non-empty strings")
        return value

    @field_validator("receiver_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("receiver_url must be an http:// or https:// base URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _tls_pairs(self) -> EmulatorSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_ca_file needs tls_cert_file and tls_key_file")
        if (self.notify_client_cert_file is None) != (self.notify_client_key_file is None):
            raise ValueError("notify_client_cert_file and notify_client_key_file must be set together")
        if self.outbound_oauth_token_url and not self.outbound_oauth_client_id:
            raise ValueError("outbound_oauth_token_url needs outbound_oauth_client_id and a client secret")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None

    @property
    def receiver_base_url(self) -> str:
        return self.receiver_url.rstrip("/")


class TlsOptions(TypedDict, total=False):
    """The subset of ``uvicorn.Config`` arguments the TLS placeholders drive."""

    ssl_certfile: str
    ssl_keyfile: str
    ssl_ca_certs: str
    ssl_cert_reqs: int
    http: type[PeerCertH11Protocol]


def uvicorn_tls_options(settings: EmulatorSettings) -> TlsOptions:
    """uvicorn.Config keyword arguments for the TLS placeholders (empty = plain HTTP).

    With a CA file, client certificates are required (mTLS, as D1 does) and the protocol
    class reports the verified certificate to the app, which maps it to an issuerId.
    """
    if not settings.tls_enabled:
        return {}
    options: TlsOptions = {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
    if settings.tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.tls_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        options["http"] = PeerCertH11Protocol
    return options
