"""Telemetry: structured logs, Prometheus metrics, OpenTelemetry traces.

Empty on purpose: workflow code imports :mod:`observability.names` through the sandbox.
"""
