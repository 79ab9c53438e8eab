"""One call at the start of each process (worker, receiver, CLI) wires its telemetry.

Order matters: logging first (so the rest can log), then the Temporal Runtime that
serves metrics (it must be the default Runtime *before* any client connects), then the
tracer provider (``temporal_client.connect`` adds the tracing interceptor when it is on).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

from opentelemetry.sdk.trace import TracerProvider
from temporalio.runtime import Runtime

from observability.logs import configure_logging
from observability.metrics import build_runtime
from observability.tracing import build_tracer_provider, otlp_endpoint, use_tracer_provider
from settings import TelemetrySettings

log = logging.getLogger("observability")


@dataclass
class Telemetry:
    tracer_provider: TracerProvider | None

    def shutdown(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def configure_process(
    service: str, settings: TelemetrySettings | None = None, *, logs: bool = True, metrics: bool = True
) -> Telemetry:
    """``logs=False``: a CLI keeps its own quiet set-up; ``metrics=False``: a short-lived CLI
    would only collide with the worker's port."""
    settings = settings or TelemetrySettings()
    if logs:
        configure_logging(settings, service)
    runtime = build_runtime(settings, service) if metrics else None
    if runtime is not None:
        Runtime.set_default(runtime, error_if_already_set=False)
    provider = build_tracer_provider(settings, service)
    use_tracer_provider(provider, set_global=provider is not None)
    traces = [f"OTLP {otlp_endpoint()}" if otlp_endpoint() else "", "console" if settings.console_traces else ""]
    log.info(
        "telemetry for %s: logs %s; metrics %s; traces %s",
        service,
        settings.log_format,
        f"http://{settings.metrics_host}:{settings.metrics_port}/metrics" if runtime else "off",
        (provider and ", ".join(filter(None, traces))) or "off",
    )
    return Telemetry(provider)


def exit_without_finalizing(code: int = 0) -> NoReturn:
    """End a process whose work is done and flushed, skipping interpreter finalization.

    The Temporal SDK's core runs threads of its own that may still call into Python while
    the interpreter finalizes; that can abort a process (exit status -6, "PyGILState_Release")
    after a perfectly clean shutdown, which a supervisor would report as a crash. Logs are
    flushed first, so nothing is lost."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
