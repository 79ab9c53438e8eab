"""The Grafana dashboard (deploy/grafana/) is well-formed, provisioned by docker-compose.yml,
queries only metrics the product exports, through the one provisioned datasource, and
shows what the issue asks: orders by stage, late orders, durations, the receiver and D1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.operations.test_alert_rules import exported_names, metric_names_in

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "card-orders.json"


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    every = board["panels"]
    assert len({p["id"] for p in every}) == len(every)
    cells: set[tuple[int, int]] = set()
    for p in every:
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    for p in panels():
        assert p["targets"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])


def test_every_query_uses_the_provisioned_datasource_and_exported_metrics() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for p in panels():
        assert p["datasource"] == {"type": "prometheus", "uid": source["uid"]}, p["title"]
        for target in p["targets"]:
            assert target["datasource"] == p["datasource"], p["title"]
            unknown = metric_names_in(target["expr"]) - exported_names()
            assert not unknown, f"{p['title']}: {sorted(unknown)} are not exported"


def test_the_dashboard_shows_stages_late_orders_durations_the_receiver_and_d1() -> None:
    used = {name for p in panels() for t in p["targets"] for name in metric_names_in(t["expr"])}
    assert {
        "card_orders_open",
        "card_orders_past_due",
        "card_orders_shipped_late_total",
        "card_order_request_to_shipped_seconds_bucket",
        "card_order_shipped_to_delivered_seconds_bucket",
        "card_order_request_to_delivered_seconds_bucket",
        "d1_receiver_errors_total",
        "d1_notifications_received_total",
        "d1_http_requests_total",
        "d1_http_request_duration_seconds_bucket",
    } <= used
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows == ["Orders", "Service levels", "Receiver", "D1"]


def test_compose_provisions_the_dashboard_from_its_files() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in services["grafana"]["volumes"])}
    assert (ROOT / mounts["/etc/grafana/provisioning"]).resolve() == GRAFANA / "provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "card-orders.yml").read_text())
    (files,) = provider["providers"]
    assert (ROOT / mounts[files["options"]["path"]]).resolve() == DASHBOARD.parent
    assert "alerts.yml" in " ".join(services["prometheus"]["volumes"])
