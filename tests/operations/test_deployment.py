"""docker-compose.yml and its variants cannot run here (no Docker engine), so this checks
what would break them or open a hole: the YAML as Compose merges it, every command's entry
point, every variable a product service gets (a setting it reads, with a valid value),
ports (no clash; loopback unless a variable says otherwise), health checks, the Prometheus
targets, the UI's codec endpoint — and the secrets: no secret variable has a default, and
every service is given exactly the files its settings name (bootstrap really runs, into
temporary volumes), never a CA's private key.

Each rule is a function returning the problems it finds; every rule has a negative test
that breaks a copy of the compose document and expects that rule to report it.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import ipaddress
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
REAL_D1 = REPO / "deploy" / "compose.real-d1.yml"
TEMPORAL_MTLS = REPO / "deploy" / "compose.temporal-mtls.yml"
ENV_EXAMPLE = REPO / "deploy" / "compose.env.example"
VARIANTS = {"sandbox": (COMPOSE,), "temporal-mtls": (COMPOSE, TEMPORAL_MTLS), "real-d1": (COMPOSE, REAL_D1)}
PRODUCT_IMAGE = "d1-card-orders:local"
# Modules (or packages) whose BaseSettings classes the product's processes read.
SETTINGS_MODULES = ("settings", "emulator.config")
# Standard OpenTelemetry SDK variables (read by the SDK and the OTLP exporter themselves).
OTEL_STANDARD = re.compile(
    r"^OTEL_(SERVICE_NAME|RESOURCE_ATTRIBUTES|SDK_DISABLED|TRACES_SAMPLER(_ARG)?|PROPAGATORS|"
    r"EXPORTER_OTLP_(TRACES_)?(ENDPOINT|HEADERS|TIMEOUT|PROTOCOL|COMPRESSION|CERTIFICATE|CLIENT_KEY|CLIENT_CERTIFICATE))$"
)
# The Temporal SDK's standard client environment (temporalio.envconfig), read by the SDK.
TEMPORAL_SDK_ENV = {
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
}
# Documented in docs/deployment.md: read by deploy/bootstrap.py, not a process setting.
DOCUMENTED_EXTRAS = {"BOOTSTRAP_OPERATOR_TOKEN", "BOOTSTRAP_RECEIVER_OPERATOR_TOKEN"}
REQUIRED_SERVICES = {
    "postgres",
    "temporal",
    "temporal-setup",
    "temporal-ui",
    "codec-server",
    "jaeger",
    "prometheus",
    "bootstrap",
    "emulator",
    "receiver",
    "worker",
}
ONE_OFF_JOBS = {"bootstrap", "temporal-setup"}
# Files of the image itself a service may name (not secrets, not from a volume).
IMAGE_FILES = {"/etc/ssl/certs/ca-certificates.crt"}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z0-9_]+)(?:(?P<colon>:?)(?P<op>[-?])(?P<arg>[^}]*))?\}")
# Names of secrets (variables and environment keys) ...
SECRET_NAME = re.compile(r"(PASSWORD|PWD|SECRET|TOKEN)$")
# ... except these, which only look like one.
NOT_SECRETS = {"TEMPORAL_CODEC_PASS_ACCESS_TOKEN"}  # the UI's on/off switch for passing tokens
TOKEN = "0f3c9a7d1e5b4c2a8f6e0d9c7b5a3f1e2d4c6b8a0f9e7d5c"
TEST_VARIABLES = {
    "CODEC_OPERATOR_TOKEN": TOKEN,
    "RECEIVER_OPERATOR_TOKEN": TOKEN[::-1],
    "POSTGRES_PASSWORD": "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a",
    "OIDC_ISSUER": "https://idp.bank.example/realms/ops",
    "OIDC_JWKS_URL": "https://idp.bank.example/realms/ops/protocol/openid-connect/certs",
    "CODEC_SERVER_OIDC_AUDIENCE": "d1-codec-server",
    "TEMPORAL_UI_OIDC_CLIENT_ID": "temporal-ui",
    "TEMPORAL_UI_OIDC_CLIENT_SECRET": "3e5f7a9c1b2d4f6a8c0e1d3f5a7c9e0b",
    # deploy/compose.real-d1.yml
    "D1_ISSUER_ID": "BANKISS001",
    "D1_BANKING_URL": "https://api.d1-stg.thalescloud.io/banking/v1",
    "D1_AUTHZ_URL": "https://api.d1-stg.thalescloud.io/authz/v1",
    "D1_SIGNING_KID": "bank-sig-2026",
    "D1_OUTBOUND_OAUTH_CLIENT_ID": "d1-bank-outbound",
    "RECEIVER_TLS_CLIENT_IDENTITY": "CN=d1-notifier.thalescloud.io",
}


# ---------------------------------------------------------------- Compose: interpolation, tags, merge


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} (values from ``variables``); $$ is a dollar."""

    def value(m: re.Match[str]) -> str:
        if m["name"] in variables:
            return variables[m["name"]]
        if m["op"] == "-":
            return m["arg"]
        raise AssertionError(f"${{{m['name']}}} has no default and no test value")

    return INTERPOLATION.sub(value, text).replace("$$", "$")


@dataclass(frozen=True)
class Reset:
    """``!reset``: the attribute is removed."""


@dataclass(frozen=True)
class Override:
    """``!override``: the attribute replaces the base file's instead of merging with it."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    pass


def _construct_reset(loader: yaml.SafeLoader, node: yaml.Node) -> Reset:
    return Reset()


def _construct_override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys inside an !override mapping
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


ComposeLoader.add_constructor("!reset", _construct_reset)
ComposeLoader.add_constructor("!override", _construct_override)


def _volume_target(spec: Any) -> str:
    return str(spec["target"]) if isinstance(spec, dict) else str(spec).split(":")[1]


def merge(base: Any, over: Any, path: tuple[str, ...] = ()) -> Any:
    """The Compose specification's merge rules (docs.docker.com/reference/compose-file/merge)."""
    if isinstance(over, Reset):
        return Reset()
    if isinstance(over, Override):
        return over.value
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            merged = merge(base.get(key), value, (*path, str(key)))
            if isinstance(merged, Reset):
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    if isinstance(base, list) and isinstance(over, list):
        last = path[-1] if path else ""
        if last in ("command", "entrypoint") or path[-2:] == ("healthcheck", "test"):
            return over
        if len(path) == 3 and path[0] == "services" and last == "volumes":  # unique by target
            targets = {_volume_target(v) for v in over}
            return [v for v in base if _volume_target(v) not in targets] + over
        return base + [v for v in over if v not in base]
    return over


def _strip(value: Any) -> Any:
    """Tags left in a base file (nothing to merge with) mean their plain value."""
    if isinstance(value, Override):
        return _strip(value.value)
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def load_texts(texts: list[str], variables: dict[str, str] | None = None) -> dict[str, Any]:
    model: dict[str, Any] = {}
    for text in texts:
        doc = yaml.load(interpolate(text, variables or TEST_VARIABLES), ComposeLoader)  # noqa: S506 - SafeLoader subclass
        assert isinstance(doc, dict)
        model = merge(model, doc)
    model = _strip(model)
    assert isinstance(model.get("services"), dict)
    return model


def load(files: tuple[Path, ...]) -> dict[str, Any]:
    return load_texts([f.read_text() for f in files])


def active(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services ``docker compose up`` starts (no profile is enabled)."""
    return {name: s for name, s in model["services"].items() if not s.get("profiles")}


def product(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == PRODUCT_IMAGE}


def env(service: dict[str, Any]) -> dict[str, str]:
    values = service.get("environment") or {}
    if isinstance(values, list):
        values = dict(item.split("=", 1) for item in values)
    return {k: str(v) for k, v in values.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    named_volume: bool


def mounts(service: dict[str, Any]) -> list[Mount]:
    out = []
    for spec in service.get("volumes") or []:
        if isinstance(spec, dict):
            source, target = str(spec.get("source", "")), str(spec["target"])
            named = spec.get("type", "volume") == "volume"
        else:
            source, target = str(spec).split(":")[:2]
            named = not source.startswith((".", "/", "~"))
        out.append(Mount(source, target.rstrip("/"), named))
    return out


# [IP:][HOST:]CONTAINER, IP in brackets for IPv6 (Compose's short syntax, no ranges).
_SHORT_PORT = re.compile(
    r"(?:(?:\[(?P<ip6>[^\]]+)\]|(?P<ip>\d+\.\d+\.\d+\.\d+)):)?(?:(?P<published>\d+):)?(?P<target>\d+)"
)


@dataclass(frozen=True)
class Port:
    host_ip: str  # "" = all interfaces
    published: int | None
    target: int


def ports(service: dict[str, Any]) -> list[Port]:
    out = []
    for spec in service.get("ports") or []:
        if isinstance(spec, dict):
            published = spec.get("published")
            out.append(Port(str(spec.get("host_ip", "")), int(published) if published else None, int(spec["target"])))
            continue
        text = str(spec).split("/")[0]
        m = _SHORT_PORT.fullmatch(text)
        assert m, f"unreadable port {spec!r}"
        out.append(Port(m["ip6"] or m["ip"] or "", int(m["published"]) if m["published"] else None, int(m["target"])))
    return out


def _settings_classes() -> Iterator[type[BaseSettings]]:
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            # The settings package re-exports the classes of its modules (settings/d1.py, ...).
            own = cls.__module__ == module.__name__ or cls.__module__.startswith(module.__name__ + ".")
            if issubclass(cls, BaseSettings) and cls is not BaseSettings and own:
                yield cls


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {(prefix + f).upper() for f in cls.model_fields}


def known_settings() -> set[str]:
    return set().union(*(_env_names(c) for c in _settings_classes()))


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def models() -> dict[str, dict[str, Any]]:
    return {name: load(files) for name, files in VARIANTS.items()}


@pytest.fixture(scope="module")
def services(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sandbox deployment (docker-compose.yml alone)."""
    return active(models["sandbox"])


# ---------------------------------------------------------------- rules: secrets


class BootstrapRunner:
    """Runs deploy/bootstrap.py as a compose model's bootstrap service would, into temporary
    directories standing for its volumes; cached per command and mounts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[Any, ...], dict[str, dict[str, bytes]]] = {}

    def volumes(self, bootstrap: dict[str, Any]) -> dict[str, dict[str, bytes]]:
        """Per named volume bootstrap mounts: relative path -> content of each file it wrote."""
        command = bootstrap["command"]
        argv = command if isinstance(command, list) else shlex.split(command)
        assert argv[:2] == ["python", "deploy/bootstrap.py"], argv
        volume_mounts = [m for m in mounts(bootstrap) if m.named_volume]
        environment = env(bootstrap)
        key = (tuple(argv), tuple((m.source, m.target) for m in volume_mounts), tuple(sorted(environment.items())))
        if key not in self._cache:
            self._cache[key] = self._run(argv[2:], volume_mounts, environment, len(self._cache))
        return self._cache[key]

    def _run(
        self, argv: list[str], volume_mounts: list[Mount], environment: dict[str, str], n: int
    ) -> dict[str, dict[str, bytes]]:
        base = self.root / f"run-{n}"
        local = {m.target: base / m.source for m in volume_mounts}

        def translate(arg: str) -> str:
            name, sep, path = arg.partition("=")
            value = path if sep and path.startswith("/") else arg
            for target, directory in local.items():
                if value == target or value.startswith(target + "/"):
                    value = str(directory) + value[len(target) :]
                    break
            return f"{name}={value}" if sep and path.startswith("/") else value

        spec = importlib.util.spec_from_file_location("deploy_bootstrap", REPO / "deploy" / "bootstrap.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        saved = dict(os.environ)
        os.environ.update(environment)
        try:
            assert module.main([translate(a) for a in argv]) == 0, "bootstrap failed"
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return {
            m.source: {
                str(p.relative_to(local[m.target])): p.read_bytes() for p in local[m.target].rglob("*") if p.is_file()
            }
            for m in volume_mounts
        }


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> BootstrapRunner:
    return BootstrapRunner(tmp_path_factory.mktemp("bootstrap"))


def _ca_public_keys(volumes: dict[str, dict[str, bytes]]) -> list[bytes]:
    keys = []
    for files in volumes.values():
        for data in files.values():
            if b"BEGIN CERTIFICATE" not in data:
                continue
            cert = x509.load_pem_x509_certificate(data)
            try:
                if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                    keys.append(
                        cert.public_key().public_bytes(
                            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                        )
                    )
            except x509.ExtensionNotFound:
                pass
    return keys


def _is_private_key_of(data: bytes, public_keys: list[bytes]) -> bool:
    if b"PRIVATE KEY" not in data:
        return False
    key = serialization.load_pem_private_key(data, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der in public_keys


@dataclass
class SecretReport:
    problems: list[str] = field(default_factory=list)
    # service -> absolute path in the container -> content (what it may read)
    visible: dict[str, dict[str, bytes]] = field(default_factory=dict)


def secret_report(model: dict[str, Any], runner: BootstrapRunner) -> SecretReport:
    """Every runtime service gets exactly the files its settings name, never a CA key."""
    report = SecretReport()
    services = active(model)
    declared = model.get("volumes") or {}
    bootstrap = services.get("bootstrap")
    written = runner.volumes(bootstrap) if bootstrap is not None else {}
    issuer_id = env(bootstrap or {}).get("D1_ISSUER_ID", "")
    ca_keys = _ca_public_keys(written)
    secret_volumes = set(written) | {v for v, spec in declared.items() if (spec or {}).get("external")}
    users: dict[str, list[str]] = {}
    for name, service in services.items():
        if name == "bootstrap":
            continue
        visible: dict[str, bytes] = {}
        external_targets = []
        for mount in mounts(service):
            if not mount.named_volume:
                if name in product(services):
                    report.problems.append(f"{name} mounts host path {mount.source}: secrets come from volumes")
                continue
            if mount.source in secret_volumes:
                users.setdefault(mount.source, []).append(name)
            if mount.source in written:
                for rel, data in written[mount.source].items():
                    visible[f"{mount.target}/{rel}"] = data
            elif (declared.get(mount.source) or {}).get("external"):
                external_targets.append(mount.target)
        report.visible[name] = visible
        values = env(service)
        named = {v.replace("{issuerId}", issuer_id) for v in values.values() if v.startswith("/")}
        dirs = {v for k, v in values.items() if k.endswith("_DIR") and v.startswith("/")}
        targets = [m.target for m in mounts(service)]
        bootstrapped = {m.target for m in mounts(service) if m.source in written}
        for path, data in sorted(visible.items()):
            if ca_keys and _is_private_key_of(data, ca_keys):
                report.problems.append(f"a CA private key ({path}) is mounted into {name}")
            elif path not in named and not any(path.startswith(d + "/") for d in dirs):
                report.problems.append(f"{name} is given {path}, which it does not read")
        for path in sorted(named - set(visible)):
            inside = next((t for t in targets if path == t or path.startswith(t + "/")), None)
            if any(path == d for d in dirs):
                continue
            if inside is None:
                if name in product(services) and path not in IMAGE_FILES:
                    report.problems.append(f"{name} reads {path}, which is in none of its volumes")
            elif inside not in external_targets and inside in bootstrapped:
                report.problems.append(f"{name} reads {path}, which bootstrap does not write")
    for volume, names in sorted(users.items()):
        if len(names) > 1:
            report.problems.append(f"secret volume {volume} is shared by {', '.join(names)}")
    return report


# ---------------------------------------------------------------- rules: ports, variables


def published_port_problems(services: dict[str, dict[str, Any]]) -> list[str]:
    """Host ports listen on loopback by default: a bind address must be given, and it must be
    127.0.0.0/8 or ::1 unless its variable is set (the Temporal frontend and UI above all)."""
    problems = []
    for name, service in services.items():
        for port in ports(service):
            try:
                loopback = bool(port.host_ip) and ipaddress.ip_address(port.host_ip).is_loopback
            except ValueError:
                loopback = port.host_ip == "localhost"
            if not loopback:
                where = port.host_ip or "all interfaces"
                problems.append(f"{name} publishes {port.published or '(random)'}->{port.target} on {where}")
    return problems


def secret_variable_problems(texts: list[str]) -> list[str]:
    """No default or example secret: secret variables are required (${VAR:?…}) and secret
    environment keys take nothing but such a variable."""
    problems = []
    for text in texts:
        for m in INTERPOLATION.finditer(text):
            if SECRET_NAME.search(m["name"]) and m["name"] not in NOT_SECRETS and not (m["colon"] and m["op"] == "?"):
                problems.append(f"secret variable {m['name']} must be required (${{{m['name']}:?…}}): {m[0]}")
        doc = yaml.load(text, ComposeLoader)  # noqa: S506 - SafeLoader subclass
        for name, service in (_strip(doc).get("services") or {}).items():
            for key, value in env(service).items():
                if not SECRET_NAME.search(key) or key in NOT_SECRETS:
                    continue
                m = INTERPOLATION.fullmatch(value)
                if m is None or not SECRET_NAME.search(m["name"]):
                    problems.append(f"{name}: {key} must come from a required secret variable, not {value[:12]!r}")
    return problems


def required_variables(text: str) -> set[str]:
    return {m["name"] for m in INTERPOLATION.finditer(text) if m["op"] == "?"}


def env_example_problems(example: str, compose_texts: list[str]) -> list[str]:
    values = dict(line.split("=", 1) for line in example.splitlines() if line.strip() and not line.startswith("#"))
    commented = set(re.findall(r"^#\s*([A-Z0-9_]+)=", example, re.M))
    problems = []
    if "openssl rand" not in example:
        problems.append("the example does not say how to generate secrets (openssl rand)")
    for name, value in values.items():
        if SECRET_NAME.search(name) and value.strip():
            problems.append(f"the example gives {name} a value: a copied example secret would be accepted")
    for i, text in enumerate(compose_texts):
        for name in sorted(required_variables(text)):
            if name not in values and not (i and name in commented):
                problems.append(f"required variable {name} is not in {ENV_EXAMPLE.name}")
    return problems


def dependency_problems(model: dict[str, Any]) -> list[str]:
    services = active(model)
    return [
        f"{name} depends on {dep}, which is not started"
        for name, s in services.items()
        for dep in (s.get("depends_on") or {})
        if dep not in services
    ]


def sandbox_api_problems(model: dict[str, Any], *, real_d1: bool) -> list[str]:
    """The emulator's admin API is on only in the sandbox, and only on the emulator; against
    real D1 the emulator does not run at all."""
    problems = []
    for name, service in active(model).items():
        value = env(service).get("EMULATOR_ADMIN_API_ENABLED")
        enabled = value is not None and value.lower() in ("1", "true", "yes", "on")
        if real_d1 and name == "emulator":
            problems.append("the emulator runs next to real D1")
        if enabled and (real_d1 or name != "emulator"):
            problems.append(f"{name} enables the emulator's admin API")
    return problems


# ---------------------------------------------------------------- the real files


def test_compose_parses_with_every_service_and_a_health_check(variant: str, models: dict[str, Any]) -> None:
    services = active(models[variant])
    wanted = REQUIRED_SERVICES - ({"bootstrap", "emulator"} if variant == "real-d1" else set())
    assert wanted <= set(services)
    for name, service in services.items():
        if name in ONE_OFF_JOBS:
            assert service.get("restart") == "no", f"{name} is a one-off job"
            continue
        check = service.get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
    # Services start in order: jobs completed, dependencies healthy.
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            wanted_cond = "service_completed_successfully" if dep in ONE_OFF_JOBS else "service_healthy"
            assert cond["condition"] == wanted_cond, f"{name} → {dep}"
    assert dependency_problems(models[variant]) == []


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


def test_every_command_points_at_an_existing_entry_point(variant: str, models: dict[str, Any]) -> None:
    items = product(active(models[variant]))
    assert {"temporal-setup", "codec-server", "receiver", "worker"} <= set(items)
    for name, service in items.items():
        command = service["command"]
        _check_entry_point(command if isinstance(command, list) else shlex.split(command), f"{name} command")
        check = service["healthcheck"]["test"] if name not in ONE_OFF_JOBS else None
        if check and check[0] == "CMD" and check[1] == "python":
            _check_entry_point(check[1:], f"{name} health check")
    build = items["worker"]["build"]
    assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


def test_dockerfile_copies_what_exists_and_runs_unprivileged(services: dict[str, dict[str, Any]]) -> None:
    text = (REPO / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert re.search(r"^USER d1$", text, re.M)
    local_packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, re.M))
    # bench/ and tools/ are developer commands (make bench, make docs), not part of the product image.
    assert local_packages - {"bench", "tools"} <= copied, f"packages missing from the image: {local_packages - copied}"
    # Every directory bootstrap mounts a volume on exists in the image, owned by d1 (else
    # Docker creates it root-owned and the unprivileged job cannot write).
    made = set(re.findall(r"(/bootstrap/[\w/-]+)", text))
    for files in (VARIANTS["sandbox"], VARIANTS["temporal-mtls"]):
        for mount in mounts(active(load(files))["bootstrap"]):
            assert mount.target in made, f"the image does not create {mount.target}"
    # The Temporal images read their key files through the d1 group (group_add).
    assert "--gid 10001" in text
    for name, service in active(load((COMPOSE, TEMPORAL_MTLS))).items():
        if service.get("image") != PRODUCT_IMAGE and any(m.source.startswith("secrets-") for m in mounts(service)):
            assert service.get("group_add") == ["10001"], name


def test_product_services_set_only_settings_they_read_with_valid_values(
    variant: str, models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    classes = list(_settings_classes())
    known = known_settings()
    for name, service in product(active(models[variant])).items():
        values = env(service)
        for var in values:
            assert var in known or OTEL_STANDARD.match(var) or var in TEMPORAL_SDK_ENV or var in DOCUMENTED_EXTRAS, (
                f"{name} sets {var}, which no setting reads"
            )
        # Each settings class accepts the values (types, patterns, JSON lists).
        for key in list(os.environ):
            if any(key.startswith(str(c.model_config.get("env_prefix", "")).upper() or "\0") for c in classes):
                monkeypatch.delenv(key)
        for var, value in values.items():
            monkeypatch.setenv(var, value)
        for cls in classes:
            if _env_names(cls) & set(values):
                cls()
        for var in values:
            monkeypatch.delenv(var)


def test_ports_do_not_clash_and_listen_on_loopback(variant: str, models: dict[str, Any]) -> None:
    services = active(models[variant])
    host_ports = [p.published for s in services.values() for p in ports(s)]
    assert len(host_ports) == len(set(host_ports)), sorted(map(str, host_ports))
    for name, service in services.items():
        container = [p.target for p in ports(service)]
        assert len(container) == len(set(container)), name
        if "replicas" in (service.get("deploy") or {}):
            assert not service.get("ports"), f"{name} has replicas: it cannot publish fixed host ports"
    assert published_port_problems(services) == []
    # Each product server listens where its settings say, and publishes that port.
    values = {name: env(s) for name, s in services.items()}
    published = {name: {(p.published, p.target) for p in ports(s)} for name, s in services.items()}
    assert (8234, int(values["codec-server"]["CODEC_SERVER_PORT"])) in published["codec-server"]
    assert (8080, int(values["receiver"]["RECEIVER_PORT"])) in published["receiver"]
    listen = {"codec-server": "CODEC_SERVER_HOST", "receiver": "RECEIVER_HOST"}
    if "emulator" in services:
        assert (8443, int(values["emulator"]["EMULATOR_PORT"])) in published["emulator"]
        listen["emulator"] = "EMULATOR_HOST"
    for name, var in listen.items():
        assert values[name][var] == "0.0.0.0", f"{name} must listen on all interfaces inside its container"  # noqa: S104


def test_publish_addresses_are_variables() -> None:
    text = COMPOSE.read_text()
    loopback = load_texts([text])
    anywhere = load_texts([text], {**TEST_VARIABLES, "TEMPORAL_PUBLISH_ADDRESS": "0.0.0.0"})  # noqa: S104
    assert published_port_problems(active(loopback)) == []
    assert {p for p in published_port_problems(active(anywhere))} == {
        "temporal publishes 7233->7233 on 0.0.0.0",
        "temporal-ui publishes 8233->8080 on 0.0.0.0",
    }


def test_ui_signs_in_with_oidc_and_passes_the_token_to_the_codec_server(variant: str, models: dict[str, Any]) -> None:
    services = active(models[variant])
    ui, codec = env(services["temporal-ui"]), env(services["codec-server"])
    assert ui["TEMPORAL_AUTH_ENABLED"] == "true"
    assert ui["TEMPORAL_AUTH_PROVIDER_URL"] == codec["CODEC_SERVER_OIDC_ISSUER"] == TEST_VARIABLES["OIDC_ISSUER"]
    assert ui["TEMPORAL_AUTH_CLIENT_SECRET"] == TEST_VARIABLES["TEMPORAL_UI_OIDC_CLIENT_SECRET"]
    assert codec["CODEC_SERVER_OIDC_AUDIENCE"] and codec["CODEC_SERVER_OIDC_JWKS_URL"].startswith("https://")
    assert ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"
    endpoint = urlsplit(ui["TEMPORAL_CODEC_ENDPOINT"])
    # The UI passes access tokens to https:// endpoints only; the endpoint carries no credential.
    assert endpoint.scheme == "https" and codec.get("CODEC_SERVER_TLS_CERT_FILE")
    assert endpoint.path.strip("/") == "" and not endpoint.query and not endpoint.username
    # The browser calls it: a host-published address of the codec server ...
    assert endpoint.hostname in ("localhost", "127.0.0.1")
    codec_ports = {p.published: p.target for p in ports(services["codec-server"])}
    assert codec_ports.get(endpoint.port) == int(codec["CODEC_SERVER_PORT"])
    # ... whose certificate names that host, and whose CORS allows the UI's origin.
    ui_port = next(p.published for p in ports(services["temporal-ui"]) if p.target == 8080)
    assert ui["TEMPORAL_CORS_ORIGINS"] == f"http://localhost:{ui_port}"
    assert ui["TEMPORAL_CORS_ORIGINS"] in json.loads(codec["CODEC_SERVER_CORS_ORIGINS"])
    assert ui["TEMPORAL_AUTH_CALLBACK_URL"] == f"{ui['TEMPORAL_CORS_ORIGINS']}/auth/sso/callback"
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_codec_server_certificate_names_the_endpoint_host(
    runner: BootstrapRunner, services: dict[str, dict[str, Any]]
) -> None:
    visible = secret_report(load((COMPOSE,)), runner).visible["codec-server"]
    cert = x509.load_pem_x509_certificate(visible[env(services["codec-server"])["CODEC_SERVER_TLS_CERT_FILE"]])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert urlsplit(env(services["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"]).hostname in names.get_values_for_type(
        x509.DNSName
    )


def test_telemetry_goes_to_jaeger_and_prometheus_scrapes_every_product_process(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("worker", "receiver"):
        values = env(services[name])
        otlp = urlsplit(values["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert otlp.hostname == "jaeger" and otlp.port == 4318  # OTLP/HTTP, what the exporter speaks
        assert values["TELEMETRY_METRICS_HOST"] == "0.0.0.0"  # noqa: S104
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
        assert targets[name] == int(env(services[name])["TELEMETRY_METRICS_PORT"])
    assert targets["temporal"] == int(env(services["temporal"])["PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1])
    volume = next(v for v in services["prometheus"]["volumes"] if "prometheus.yml" in v)
    assert (REPO / volume.split(":")[0]).resolve() == REPO / "deploy" / "prometheus.yml"


def test_every_service_gets_exactly_the_secrets_it_reads(
    variant: str, models: dict[str, Any], runner: BootstrapRunner
) -> None:
    report = secret_report(models[variant], runner)
    assert report.problems == []
    if variant == "real-d1":
        return
    # It is not vacuous: the secrets are where the rules say, and nowhere else.
    holders = {
        "issuer/assertion-signing-key.jwk": {"worker"},
        "receiver-oauth-client-secret": {"receiver", "emulator"},
        # The authority ring only where everything must be opened; the receiver its own key.
        "codec-keys.json": {"worker", "codec-server"},
        "receiver-keys.json": {"receiver"},
        "receiver-operators": {"receiver"},
        "codec-operators": {"codec-server"},
        "d1-encryption-keyring.json": {"emulator"},
    }
    for suffix, expected in holders.items():
        have = {name for name, files in report.visible.items() if any(p.endswith("/" + suffix) for p in files)}
        assert have == expected, suffix
    assert all(not p.endswith("ca.key") for files in report.visible.values() for p in files)


def test_no_secret_has_a_default_and_the_example_says_how_to_generate_them() -> None:
    texts = [f.read_text() for f in (COMPOSE, REAL_D1, TEMPORAL_MTLS)]
    assert secret_variable_problems(texts) == []
    assert env_example_problems(ENV_EXAMPLE.read_text(), texts) == []
    secrets = ("CODEC_OPERATOR_TOKEN", "RECEIVER_OPERATOR_TOKEN", "POSTGRES_PASSWORD", "TEMPORAL_UI_OIDC_CLIENT_SECRET")
    for name in secrets:
        assert name in required_variables(texts[0])
        with pytest.raises(AssertionError, match=f"{name}.*no default"):
            load_texts(texts[:1], {k: v for k, v in TEST_VARIABLES.items() if k != name})


@pytest.mark.parametrize(
    "token",
    [None, "", "change-me-to-a-long-random-string", "short", "a" * 40, "example-0123456789abcdef0123456789abcdef"],
)
def test_bootstrap_refuses_missing_short_or_example_tokens(
    token: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("deploy_bootstrap", REPO / "deploy" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("BOOTSTRAP_RECEIVER_OPERATOR_TOKEN", TOKEN)
    if token is None:
        monkeypatch.delenv("BOOTSTRAP_OPERATOR_TOKEN", raising=False)
    else:
        monkeypatch.setenv("BOOTSTRAP_OPERATOR_TOKEN", token)
    assert module.main(["--work", str(tmp_path / "w"), "--out", f"worker={tmp_path / 'o'}"]) == 2
    assert "BOOTSTRAP_OPERATOR_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before anything is made


def test_real_d1_runs_no_sandbox(models: dict[str, Any]) -> None:
    model = models["real-d1"]
    services = active(model)
    assert "emulator" not in services and "bootstrap" not in services
    assert sandbox_api_problems(model, real_d1=True) == [] and dependency_problems(model) == []
    assert sandbox_api_problems(models["sandbox"], real_d1=False) == []
    worker = env(services["worker"])
    assert "emulator" not in worker["D1_BANKING_URL"] + worker["D1_AUTHZ_URL"]
    assert worker["D1_ISSUER_ID"] == TEST_VARIABLES["D1_ISSUER_ID"]
    for name, service in product(services).items():
        assert not any(k.startswith("EMULATOR_") for k in env(service)), name
        assert env(service).get("D1_ALLOW_PLAINTEXT", "false") == "false"
        assert env(service).get("RECEIVER_ALLOW_PLAINTEXT", "false") == "false"
        for mount in mounts(service):
            assert (model["volumes"].get(mount.source) or {}).get("external"), f"{name}: {mount.source} is not yours"
    # The sandbox is where the admin API is on (the emulator's own setting).
    assert env(active(models["sandbox"])["emulator"])["EMULATOR_ADMIN_API_ENABLED"] == "true"
    text = REAL_D1.read_text()
    for name in ("D1_ISSUER_ID", "D1_BANKING_URL", "D1_AUTHZ_URL", "D1_SIGNING_KID", "RECEIVER_TLS_CLIENT_IDENTITY"):
        assert name in required_variables(text)


def _cert(data: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data)


def test_temporal_mtls_variant_chains_every_client_to_the_server(
    models: dict[str, Any], runner: BootstrapRunner
) -> None:
    model = models["temporal-mtls"]
    services = active(model)
    visible = secret_report(model, runner).visible
    server = env(services["temporal"])
    assert server["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    server_cert = _cert(visible["temporal"][server["TEMPORAL_TLS_FRONTEND_CERT"]])
    client_ca = _cert(visible["temporal"][server["TEMPORAL_TLS_CLIENT1_CA_CERT"]])
    spec = importlib.util.spec_from_file_location("deploy_bootstrap", REPO / "deploy" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    clients = {}
    for name in ("worker", "receiver", "temporal-setup"):
        sdk = env(services[name])  # the SDK's standard variables (temporalio.envconfig)
        clients[name] = (
            sdk["TEMPORAL_TLS_CLIENT_CERT_PATH"],
            sdk["TEMPORAL_TLS_SERVER_CA_CERT_PATH"],
            sdk["TEMPORAL_TLS_SERVER_NAME"],
        )
    ui = env(services["temporal-ui"])
    clients["temporal-ui"] = (ui["TEMPORAL_TLS_CERT"], ui["TEMPORAL_TLS_CA"], ui["TEMPORAL_TLS_SERVER_NAME"])
    assert ui["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    for name, (cert_path, ca_path, server_name) in clients.items():
        cert = _cert(visible[name][cert_path])
        cert.verify_directly_issued_by(client_ca)  # the server accepts it
        server_cert.verify_directly_issued_by(_cert(visible[name][ca_path]))  # it accepts the server
        assert server_name in server_cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == module.TEMPORAL_IDENTITIES[name]
    # A Temporal client certificate does not pass the D1 hops' TLS (another CA).
    d1_ca = _cert(visible["receiver"][env(services["receiver"])["RECEIVER_TLS_CLIENT_CA_FILE"]])
    with pytest.raises(InvalidSignature):  # same subject name (security/pki.py), another key
        _cert(visible["worker"]["/secrets/temporal/client.crt"]).verify_directly_issued_by(d1_ca)


# ---------------------------------------------------------------- negative tests: each rule fails


def _mutated(mutate: Callable[[dict[str, Any]], None], files: tuple[Path, ...] = (COMPOSE,)) -> dict[str, Any]:
    model = copy.deepcopy(load(files))
    mutate(model)
    return model


def _add_mount(service: str, spec: str) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["services"][service]["volumes"].append(spec)


def _swap_bootstrap_outputs(a: str, b: str) -> Callable[[dict[str, Any]], None]:
    """bootstrap writes set ``a`` into service ``b``'s volume and the other way round."""

    def mutate(model: dict[str, Any]) -> None:
        swap = {
            f"secrets-{a}:/bootstrap/out/{a}": f"secrets-{a}:/bootstrap/out/{b}",
            f"secrets-{b}:/bootstrap/out/{b}": f"secrets-{b}:/bootstrap/out/{a}",
        }
        volumes = model["services"]["bootstrap"]["volumes"]
        model["services"]["bootstrap"]["volumes"] = [swap.get(v, v) for v in volumes]

    return mutate


SECRET_MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "the emulator gets the worker's volume",
        _add_mount("emulator", "secrets-worker:/worker:ro"),
        "emulator is given /worker/issuer/assertion-signing-key.jwk, which it does not read",
    ),
    (
        "the receiver gets the issuer's signing key",
        _add_mount("receiver", "secrets-worker:/worker:ro"),
        "receiver is given /worker/issuer/assertion-signing-key.jwk, which it does not read",
    ),
    (
        "the worker gets the receiver's OAuth secret",
        _add_mount("worker", "secrets-receiver:/receiver:ro"),
        "worker is given /receiver/receiver-oauth-client-secret, which it does not read",
    ),
    (
        "a set copied into the wrong volume",
        _swap_bootstrap_outputs("worker", "receiver"),
        "worker is given /secrets/receiver-oauth-client-secret, which it does not read",
    ),
    (
        "a secret read from a host directory",
        _add_mount("worker", "./secrets:/more-secrets:ro"),
        "worker mounts host path ./secrets",
    ),
    (
        "a setting naming a file nobody writes",
        lambda m: m["services"]["worker"]["environment"].__setitem__("D1_SIGNING_KEY_FILE", "/secrets/other.jwk"),
        "worker reads /secrets/other.jwk, which bootstrap does not write",
    ),
    (
        "a setting naming a file outside the volumes",
        lambda m: m["services"]["receiver"]["environment"].__setitem__("RECEIVER_TLS_KEY_FILE", "/app/key.pem"),
        "receiver reads /app/key.pem, which is in none of its volumes",
    ),
]


@pytest.mark.parametrize(("label", "mutate", "expected"), [pytest.param(*m, id=m[0]) for m in SECRET_MUTATIONS])
def test_a_secret_a_service_does_not_read_fails_the_check(
    label: str, mutate: Callable[[dict[str, Any]], None], expected: str, runner: BootstrapRunner
) -> None:
    problems = secret_report(_mutated(mutate), runner).problems
    assert any(expected in p for p in problems), (label, problems)


@pytest.mark.parametrize("service", ["worker", "codec-server", "temporal-ui"])
def test_the_ca_key_in_a_runtime_service_fails_the_check(service: str, runner: BootstrapRunner) -> None:
    def mutate(model: dict[str, Any]) -> None:
        model["services"][service].setdefault("volumes", []).append("bootstrap-work:/ca:ro")
        # Even when a setting names it, a CA key must not be there.
        model["services"][service]["environment"]["SOME_KEY_FILE"] = "/ca/pki/ca.key"

    problems = secret_report(_mutated(mutate), runner).problems
    assert f"a CA private key (/ca/pki/ca.key) is mounted into {service}" in problems, problems
    temporal_ca = secret_report(
        _mutated(
            lambda m: m["services"][service].setdefault("volumes", []).append("bootstrap-work:/ca:ro"),
            (COMPOSE, TEMPORAL_MTLS),
        ),
        runner,
    ).problems
    assert f"a CA private key (/ca/temporal-pki/ca.key) is mounted into {service}" in temporal_ca


def test_a_shared_secret_volume_fails_the_check(runner: BootstrapRunner) -> None:
    problems = secret_report(_mutated(_add_mount("temporal-setup", "secrets-worker:/w:ro")), runner).problems
    assert "secret volume secrets-worker is shared by temporal-setup, worker" in problems


@pytest.mark.parametrize(
    ("service", "spec", "expected"),
    [
        ("temporal", "7233:7233", "temporal publishes 7233->7233 on all interfaces"),
        ("temporal", "0.0.0.0:7233:7233", "temporal publishes 7233->7233 on 0.0.0.0"),
        ("temporal", "7233", "temporal publishes (random)->7233 on all interfaces"),
        ("temporal-ui", "[::]:8233:8080", "temporal-ui publishes 8233->8080 on ::"),
        ("temporal-ui", {"target": 8080, "published": 8233}, "temporal-ui publishes 8233->8080 on all interfaces"),
        (
            "temporal-ui",
            {"target": 8080, "published": "8233", "host_ip": "0.0.0.0"},  # noqa: S104
            "temporal-ui publishes 8233->8080 on 0.0.0.0",
        ),
    ],
)
def test_temporal_or_its_ui_on_all_interfaces_fails_the_check(service: str, spec: Any, expected: str) -> None:
    model = _mutated(lambda m: m["services"][service].__setitem__("ports", [spec]))
    assert expected in published_port_problems(active(model))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "${POSTGRES_PASSWORD:?",
            "${POSTGRES_PASSWORD:-temporal}${UNUSED:?",
            "secret variable POSTGRES_PASSWORD must be required",
        ),
        ("${CODEC_OPERATOR_TOKEN:?", "${CODEC_OPERATOR_TOKEN-}${UNUSED:?", "secret variable CODEC_OPERATOR_TOKEN"),
        (
            "${RECEIVER_OPERATOR_TOKEN:?",
            "${RECEIVER_OPERATOR_TOKEN}${UNUSED:?",
            "secret variable RECEIVER_OPERATOR_TOKEN",
        ),
        (
            "${TEMPORAL_UI_OIDC_CLIENT_SECRET:?",
            "${TEMPORAL_UI_OIDC_CLIENT_SECRET?",
            "secret variable TEMPORAL_UI_OIDC_CLIENT_SECRET",
        ),
        (
            "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?",
            "POSTGRES_PASSWORD: temporal #${POSTGRES_PASSWORD:?",
            "postgres: POSTGRES_PASSWORD must come from a required secret variable",
        ),
        (
            "BOOTSTRAP_OPERATOR_TOKEN: ${CODEC_OPERATOR_TOKEN:?",
            "BOOTSTRAP_OPERATOR_TOKEN: ${D1_ISSUER_ID:?",
            "bootstrap: BOOTSTRAP_OPERATOR_TOKEN must come from a required secret variable",
        ),
    ],
)
def test_a_secret_variable_with_a_default_fails_the_check(old: str, new: str, expected: str) -> None:
    text = COMPOSE.read_text()
    assert old in text
    problems = secret_variable_problems([text.replace(old, new, 1)])
    assert any(expected in p for p in problems), problems


def test_an_example_secret_or_a_missing_variable_in_the_example_fails_the_check() -> None:
    example, texts = ENV_EXAMPLE.read_text(), [COMPOSE.read_text()]
    with_value = example.replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=change-me\n")
    assert with_value != example
    assert any("gives POSTGRES_PASSWORD a value" in p for p in env_example_problems(with_value, texts))
    missing = example.replace("OIDC_JWKS_URL=\n", "")
    assert "required variable OIDC_JWKS_URL is not in compose.env.example" in env_example_problems(missing, texts)
    assert any("openssl rand" in p for p in env_example_problems(example.replace("openssl rand", "pwgen"), texts))


def test_the_sandbox_or_its_admin_api_in_real_d1_fails_the_check(models: dict[str, Any]) -> None:
    base, real = COMPOSE.read_text(), REAL_D1.read_text()
    line = 'profiles: ["sandbox"]   # never started with this file'
    assert real.count(line) == 2  # the emulator's, then bootstrap's
    kept = load_texts([base, real.replace(line, "profiles: []", 1)])
    assert sandbox_api_problems(kept, real_d1=True) == [
        "the emulator runs next to real D1",
        "emulator enables the emulator's admin API",
    ]
    worker_on = copy.deepcopy(models["real-d1"])
    worker_on["services"]["worker"]["environment"]["EMULATOR_ADMIN_API_ENABLED"] = "true"
    assert sandbox_api_problems(worker_on, real_d1=True) == ["worker enables the emulator's admin API"]
    receiver_on = copy.deepcopy(models["sandbox"])
    receiver_on["services"]["receiver"]["environment"]["EMULATOR_ADMIN_API_ENABLED"] = "1"
    assert sandbox_api_problems(receiver_on, real_d1=False) == ["receiver enables the emulator's admin API"]
    lost_override = load_texts([base, real.replace("depends_on: !override", "depends_on:")])
    assert "worker depends on emulator, which is not started" in dependency_problems(lost_override)
    assert "worker depends on bootstrap, which is not started" in dependency_problems(lost_override)


def test_merge_follows_the_compose_specification() -> None:
    base = {
        "services": {
            "a": {
                "command": ["x"],
                "ports": ["1:1"],
                "volumes": ["v:/t", "w:/u"],
                "environment": {"A": "1"},
                "depends_on": {"b": {}},
            }
        }
    }
    over = {
        "services": {
            "a": {
                "command": ["y"],
                "ports": ["2:2"],
                "volumes": ["z:/t"],
                "environment": {"B": "2"},
                "depends_on": Override({"c": {}}),
            }
        }
    }
    merged = _strip(merge(base, over))["services"]["a"]
    assert merged == {
        "command": ["y"],
        "ports": ["1:1", "2:2"],
        "volumes": ["w:/u", "z:/t"],
        "environment": {"A": "1", "B": "2"},
        "depends_on": {"c": {}},
    }
    assert "depends_on" not in _strip(merge(base, {"services": {"a": {"depends_on": Reset()}}}))["services"]["a"]
