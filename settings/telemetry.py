"""`TELEMETRY_*`, `AUDIT_*`: logs, metrics, traces, and the audit log of operator actions."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
