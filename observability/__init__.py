"""Telemetry of the issuer-side processes: structured logs, Prometheus metrics, OpenTelemetry traces.

Kept import-light on purpose: workflow code imports :mod:`observability.names` (pure
constants) through the sandbox, so this package's ``__init__`` pulls in nothing.
One call per process wires everything: :func:`observability.process.configure_process`.
"""
