"""Every setting the issuer-side processes read, from environment variables.

One class per concern, each with its own prefix, so a deployment (see docker-compose.yml)
can be checked against this package: a variable it sets must be a field here. Secrets are
never values here, only the *paths* of files that hold them. Callers import from
``settings``; each class lives in the module of its concern (settings/temporal.py,
settings/d1.py, ...). docs/configuration.md is generated from them (tools/settings_reference.py).
"""

from __future__ import annotations

from settings.codec import CodecServerSettings, CodecSettings
from settings.d1 import D1BatchSettings, D1ClientSettings, OrderTimingSettings
from settings.events import EventsSettings
from settings.issuer_api import IssuerApiSettings
from settings.paths import DEFAULT_STATE_DIR, REPO_ROOT
from settings.receiver import ReceiverSettings
from settings.telemetry import AuditSettings, TelemetrySettings
from settings.temporal import TemporalConfigError, TemporalSettings, load_temporal_profile, temporal_config_file

__all__ = [
    "DEFAULT_STATE_DIR",
    "REPO_ROOT",
    "AuditSettings",
    "CodecServerSettings",
    "CodecSettings",
    "D1BatchSettings",
    "D1ClientSettings",
    "EventsSettings",
    "IssuerApiSettings",
    "OrderTimingSettings",
    "ReceiverSettings",
    "TelemetrySettings",
    "TemporalConfigError",
    "TemporalSettings",
    "load_temporal_profile",
    "temporal_config_file",
]
