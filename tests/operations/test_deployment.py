"""docker-compose.yml cannot run here (no Docker engine), so this checks what would break
it: the YAML, every command's entry point, every variable a product service gets (a
setting it reads, with a valid value), ports, health checks, the secrets the bootstrap job
writes, the Prometheus targets and the UI's codec endpoint."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
PRODUCT_IMAGE = "d1-card-orders:local"
# Modules whose BaseSettings classes the product's processes read.
SETTINGS_MODULES = ("settings", "emulator.config")
# Standard OpenTelemetry SDK variables (read by the SDK and the OTLP exporter themselves).
OTEL_STANDARD = re.compile(
    r"^OTEL_(SERVICE_NAME|RESOURCE_ATTRIBUTES|SDK_DISABLED|TRACES_SAMPLER(_ARG)?|PROPAGATORS|"
    r"EXPORTER_OTLP_(TRACES_)?(ENDPOINT|HEADERS|TIMEOUT|PROTOCOL|COMPRESSION|CERTIFICATE|CLIENT_KEY|CLIENT_CERTIFICATE))$"
)
# Documented in README "Deployment": read by deploy/bootstrap.py, not a process setting.
DOCUMENTED_EXTRAS = {"BOOTSTRAP_OPERATOR_TOKEN"}
REQUIRED_SERVICES = {
    "postgres", "temporal", "temporal-setup", "temporal-ui", "codec-server", "jaeger", "prometheus",
    "bootstrap", "emulator", "receiver", "worker",
}
ONE_OFF_JOBS = {"bootstrap", "temporal-setup"}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?(?P<op>[-?])(?P<arg>[^}]*))?\}")
TEST_VARIABLES = {"CODEC_OPERATOR_TOKEN": "test-operator-token"}


def _interpolate(text: str) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} (values from TEST_VARIABLES); $$ is a dollar."""

    def value(m: re.Match[str]) -> str:
        if m["name"] in TEST_VARIABLES:
            return TEST_VARIABLES[m["name"]]
        if m["op"] == "-":
            return m["arg"]
        raise AssertionError(f"${{{m['name']}}} has no default and no test value")

    return INTERPOLATION.sub(value, text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(_interpolate(COMPOSE.read_text()))
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _product(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == PRODUCT_IMAGE}


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _settings_classes() -> Iterator[type[BaseSettings]]:
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls is not BaseSettings and cls.__module__ == module.__name__:
                yield cls


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {(prefix + field).upper() for field in cls.model_fields}


def _ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    for spec in service.get("ports") or []:
        host, _, container = str(spec).rpartition(":")
        out.append((int(host.rsplit(":", 1)[-1]), int(container.split("/")[0])))
    return out


def test_compose_parses_with_every_service_and_a_health_check(services: dict[str, dict[str, Any]]) -> None:
    assert REQUIRED_SERVICES <= set(services)
    for name, service in services.items():
        if name in ONE_OFF_JOBS:
            assert service.get("restart") == "no", f"{name} is a one-off job"
            continue
        check = service.get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
    # Services start in order: jobs completed, dependencies healthy.
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            wanted = "service_completed_successfully" if dep in ONE_OFF_JOBS else "service_healthy"
            assert cond["condition"] == wanted, f"{name} → {dep}"


def _check_entry_point(argv: list[str], where: str) -> None:
    assert argv[0] == "python", f"{where}: {argv}"
    if argv[1] == "-m":
        module = argv[2]
        assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
        if module == "starter" and len(argv) > 3:
            from starter.cli import build_parser

            build_parser().parse_args(argv[3:])  # the subcommand and its options exist
    else:
        script = REPO / argv[1]
        assert script.is_file(), f"{where}: no file {argv[1]}"


def test_every_command_points_at_an_existing_entry_point(services: dict[str, dict[str, Any]]) -> None:
    product = _product(services)
    assert {"bootstrap", "temporal-setup", "codec-server", "emulator", "receiver", "worker"} <= set(product)
    for name, service in product.items():
        command = service["command"]
        _check_entry_point(command if isinstance(command, list) else shlex.split(command), f"{name} command")
        check = service["healthcheck"]["test"] if name not in ONE_OFF_JOBS else None
        if check and check[0] == "CMD" and check[1] == "python":
            _check_entry_point(check[1:], f"{name} health check")
    build = product["worker"]["build"]
    assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


def test_dockerfile_copies_what_exists_and_runs_unprivileged() -> None:
    text = (REPO / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert re.search(r"^USER d1$", text, re.M)
    local_packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, re.M))
    assert local_packages - {"bench"} <= copied, f"packages missing from the image: {local_packages - copied}"


def test_product_services_set_only_settings_they_read_with_valid_values(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    classes = list(_settings_classes())
    known = set().union(*(_env_names(c) for c in classes))
    for name, service in _product(services).items():
        env = _env(service)
        for var in env:
            assert var in known or OTEL_STANDARD.match(var) or var in DOCUMENTED_EXTRAS, (
                f"{name} sets {var}, which no setting reads"
            )
        # Each settings class accepts the values (types, patterns, JSON lists).
        for key in list(os.environ):
            if any(key.startswith(str(c.model_config.get("env_prefix", "")).upper() or "\0") for c in classes):
                monkeypatch.delenv(key)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        for cls in classes:
            if _env_names(cls) & set(env):
                cls()
        for var in env:
            monkeypatch.delenv(var)


def test_ports_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    host_ports = [host for s in services.values() for host, _ in _ports(s)]
    assert len(host_ports) == len(set(host_ports)), sorted(host_ports)
    for name, service in services.items():
        container = [c for _, c in _ports(service)]
        assert len(container) == len(set(container)), name
        if "replicas" in (service.get("deploy") or {}):
            assert not service.get("ports"), f"{name} has replicas: it cannot publish fixed host ports"
    # Each product server listens where its settings say, and publishes that port.
    env = {name: _env(s) for name, s in services.items()}
    assert (8234, int(env["codec-server"]["CODEC_SERVER_PORT"])) in _ports(services["codec-server"])
    assert (8443, int(env["emulator"]["EMULATOR_PORT"])) in _ports(services["emulator"])
    assert (8080, int(env["receiver"]["RECEIVER_PORT"])) in _ports(services["receiver"])
    listen = {"codec-server": "CODEC_SERVER_HOST", "emulator": "EMULATOR_HOST", "receiver": "RECEIVER_HOST"}
    for name, var in listen.items():
        assert env[name][var] == "0.0.0.0", f"{name} must listen on all interfaces inside its container"  # noqa: S104


def test_ui_codec_endpoint_is_the_codec_server_and_allowed_by_its_cors(services: dict[str, dict[str, Any]]) -> None:
    import json

    ui_env, codec_env = _env(services["temporal-ui"]), _env(services["codec-server"])
    endpoint = urlsplit(ui_env["TEMPORAL_CODEC_ENDPOINT"])
    # The browser calls it: a host-published address of the codec server.
    assert endpoint.hostname in ("localhost", "127.0.0.1")
    published = {host: container for host, container in _ports(services["codec-server"])}
    assert endpoint.port in published and published[endpoint.port] == int(codec_env["CODEC_SERVER_PORT"])
    assert endpoint.scheme == ("https" if codec_env.get("CODEC_SERVER_TLS_CERT_FILE") else "http")
    # The token in the path is the one bootstrap writes into the operator tokens file.
    assert endpoint.path.strip("/") == TEST_VARIABLES["CODEC_OPERATOR_TOKEN"]
    assert _env(services["bootstrap"])["BOOTSTRAP_OPERATOR_TOKEN"] == TEST_VARIABLES["CODEC_OPERATOR_TOKEN"]
    ui_host_port = next(host for host, container in _ports(services["temporal-ui"]) if container == 8080)
    assert f"http://localhost:{ui_host_port}" in json.loads(codec_env["CODEC_SERVER_CORS_ORIGINS"])
    assert ui_env["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_telemetry_goes_to_jaeger_and_prometheus_scrapes_every_product_process(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("worker", "receiver"):
        env = _env(services[name])
        otlp = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert otlp.hostname == "jaeger" and otlp.port == 4318  # OTLP/HTTP, what the exporter speaks
        assert env["TELEMETRY_METRICS_HOST"] == "0.0.0.0"  # noqa: S104
    prom = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    targets: dict[str, int] = {}
    for job in prom["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                targets[host] = int(sd["port"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                targets[host] = int(port)
    for name in ("worker", "receiver"):
        assert targets[name] == int(_env(services[name])["TELEMETRY_METRICS_PORT"])
    assert targets["temporal"] == int(_env(services["temporal"])["PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1])
    volume = next(v for v in services["prometheus"]["volumes"] if "prometheus.yml" in v)
    assert (REPO / volume.split(":")[0]).resolve() == REPO / "deploy" / "prometheus.yml"


def test_files_the_services_read_are_the_ones_bootstrap_and_the_emulator_write(
    services: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.syspath_prepend(str(REPO / "deploy"))
    bootstrap_module = importlib.import_module("bootstrap")
    command = services["bootstrap"]["command"]
    secrets_dir = command[command.index("--secrets") + 1]
    hosts = command[command.index("--hosts") + 1].split(",")
    monkeypatch.setenv("D1_ISSUER_ID", _env(services["bootstrap"])["D1_ISSUER_ID"])
    bootstrap_module.bootstrap(tmp_path, hosts, "token")
    emulator_env = _env(services["emulator"])
    written_by_emulator = emulator_env["EMULATOR_STATE_DIR"] + "/d1-encryption-public.jwk"
    for name, service in _product(services).items():
        for var, value in _env(service).items():
            if not var.endswith("_FILE"):
                continue
            value = value.replace("{issuerId}", "TESTISS001")
            if value.startswith(secrets_dir + "/"):
                assert (tmp_path / value[len(secrets_dir) + 1:]).is_file(), f"{name} {var}={value}: not bootstrapped"
            else:
                assert value == written_by_emulator, f"{name} {var}={value}: nobody writes it"
    assert "bootstrap" in sys.modules
