"""Every setting the issuer-side processes read, from environment variables.

One class per concern, each with its own prefix, so a deployment (see docker-compose.yml)
can be checked against this file: a variable it sets must be a field here. Secrets are
never values here, only the *paths* of files that hold them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
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
    banking_url: str = "http://127.0.0.1:8443/banking/v1"
    authz_url: str = "http://127.0.0.1:8443/authz/v1"
    # ES256 private key (JWK JSON or PEM) that signs the token assertion, and its kid
    # as registered with D1 at onboarding.
    signing_key_file: Path = DEFAULT_STATE_DIR / "issuer" / "assertion-signing-key.jwk"
    signing_kid: str | None = None
    # D1's P-256 public key for encryptedData (JWK JSON with kid), given at onboarding.
    encryption_public_key_file: Path = DEFAULT_STATE_DIR / "emulator" / "d1-encryption-public.jwk"
    token_audience: str | None = "https://api.d1.thalescloud.io"
    assertion_lifetime_s: int = Field(default=300, ge=30, le=900)
    # Refresh the cached token this long before D1 says it expires.
    token_refresh_margin_s: int = Field(default=60, ge=0)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    # "YYMM" (physical-issuance guides) or "MMYY" (generic encryption page): per program.
    expiry_format: str = Field(default="YYMM", pattern="^(YYMM|MMYY)$")


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


class StateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="D1O_", extra="ignore")

    state_dir: Path = DEFAULT_STATE_DIR


class CodecSettings(BaseSettings):
    """Payload encryption at rest in Temporal (see security/codec.py)."""

    model_config = SettingsConfigDict(env_prefix="CODEC_", extra="ignore")

    keys_file: Path = DEFAULT_STATE_DIR / "codec-keys.json"
    # Turning this off stores card data in clear in Temporal: development only, logged loudly.
    enabled: bool = True
