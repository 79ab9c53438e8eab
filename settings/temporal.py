"""`TEMPORAL_*`: where Temporal is, read as the ``temporal`` CLI reads it, and the product's task queue."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from temporalio.envconfig import ClientConfigProfile


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
