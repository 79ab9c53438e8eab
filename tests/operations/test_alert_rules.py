"""The Prometheus alert rules under deploy/prometheus/ are valid (``promtool check rules``),
behave as their unit tests say (``promtool test rules``) and use only metric names the
product exports, or the two the work in progress will (named in alerts.yml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from observability import names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"
# Metrics of work in progress (events/: webhook endpoints; the activation endpoint).
PENDING = {"card_orders_webhook_endpoint_failing", "card_orders_activations_before_delivery_total"}
COUNTERS = {
    names.SHIPPED_LATE,
    names.RETURNED,
    names.EXCEPTIONS,
    names.RECEIVER_ERRORS,
    names.D1_REQUESTS,
    names.NOTIFICATIONS_RECEIVED,
    names.NOTIFICATIONS_UNKNOWN,
    names.NOTIFICATIONS_LATE,
    names.NOTIFICATIONS_DUPLICATED,
    names.ORDERS_STARTED,
    names.ORDERS_FINISHED,
    names.PAYLOADS_REFUSED,
    names.MESSAGES_REFUSED,
}
HISTOGRAMS = {*names.SERVICE_DURATIONS, names.D1_REQUEST_DURATION}


def exported_names() -> set[str]:
    """What /metrics serves for the product's own metrics (counters with ``_total``)."""
    out = {f"{name}_total" for name in COUNTERS} | {names.ORDERS_PAST_DUE, names.ORDERS_OPEN, "up"}
    out |= {f"{name}_{suffix}" for name in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
    return out | PENDING


_PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate", "histogram_quantile",
    "le", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset", "topk",
    "clamp_min", "vector", "time", "label_replace", "sort_desc", "abs", "round", "delta", "deriv",
}  # fmt: skip


def metric_names_in(expr: str) -> set[str]:
    """Identifiers of a PromQL expression that are not functions, keywords, labels or strings."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in _PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", w)}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but promtool is not installed: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run installs it, and in CI this runs)")
    return found


def test_every_alert_uses_metrics_the_product_exports() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {
        "CardOrdersPastDue",
        "ReceiverErrors",
        "D1Refusals",
        "D1Unreachable",
        "WebhookEndpointFailing",
        "CardActivatedBeforeDelivery",
    }
    for rule in rules:
        unknown = metric_names_in(rule["expr"]) - exported_names()
        assert not unknown, f"{rule['alert']} uses metrics nobody exports: {sorted(unknown)}"


def test_the_name_check_sees_a_misspelt_metric() -> None:
    assert metric_names_in('sum by (kind) (rate(d1_receiver_error_total{kind="bug"}[5m])) > 0') == {
        "d1_receiver_error_total"
    }


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
