"""How every process finds Temporal: the SDK's standard configuration, shared with the CLI.

Each test starts from an environment without any ``TEMPORAL_*`` variable and with a home
directory of its own (no ``~/.config/temporalio/temporal.toml`` of the machine leaks in).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.service import TLSConfig

from security.codec import generate_keys_file, load_codec
from security.pki import TemporalPki, ensure_local_pki
from settings import REPO_ROOT, TemporalConfigError, TemporalSettings
from temporal_client import connect, connect_config, describe
from tests.conftest import temporal_cli
from tests.support.temporal_pki import ensure_temporal_pki

API_KEY = "test-api-key-4f9d2c"  # a made-up value: must never appear in a log line


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("TEMPORAL_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    yield


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TemporalPki:
    pki = ensure_local_pki(tmp_path_factory.mktemp("temporal-config-pki"), [])
    return ensure_temporal_pki(pki, ["worker"])


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(text)
    return path


def test_nothing_configured_is_the_local_dev_server_without_tls() -> None:
    config = connect_config()
    assert config == {"target_host": "127.0.0.1:7233", "namespace": "default"}
    assert describe(config) == "address 127.0.0.1:7233, namespace default, TLS off, auth none"
    assert TemporalSettings().task_queue == "d1-card-orders"


def test_mtls_from_the_standard_variables_only(monkeypatch: pytest.MonkeyPatch, certs: TemporalPki) -> None:
    client = certs.client("worker")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.bank.internal:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "card-orders")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(client.key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certs.ca_cert))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "frontend.temporal.bank.internal")
    monkeypatch.setenv("TEMPORAL_GRPC_META_X_TENANT", "bank-1")
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", "cards-eu")

    config = connect_config()
    assert config["target_host"] == "temporal.bank.internal:7233"
    assert config["namespace"] == "card-orders"
    assert config["tls"] == TLSConfig(
        server_root_ca_cert=certs.ca_cert.read_bytes(),
        domain="frontend.temporal.bank.internal",
        client_cert=client.cert.read_bytes(),
        client_private_key=client.key.read_bytes(),
    )
    assert config["rpc_metadata"] == {"x-tenant": "bank-1"}
    assert "api_key" not in config
    assert describe(config) == "address temporal.bank.internal:7233, namespace card-orders, TLS on, auth mTLS"
    settings = TemporalSettings()
    assert (settings.address, settings.namespace, settings.task_queue) == (
        "temporal.bank.internal:7233",
        "card-orders",
        "cards-eu",
    )


def test_a_toml_profile_chosen_by_temporal_profile_and_read_alike_by_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certs: TemporalPki
) -> None:
    client = certs.client("worker")
    path = _toml(
        tmp_path,
        f"""
[profile.default]
address = "127.0.0.1:7233"

[profile.prod]
address = "card-orders.a1b2c.tmprl.cloud:7233"
namespace = "card-orders.a1b2c"

[profile.prod.tls]
client_cert_path = "{client.cert}"
client_key_path = "{client.key}"
""",
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(path))
    assert connect_config()["target_host"] == "127.0.0.1:7233"  # the default profile

    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    config = connect_config()
    assert config["target_host"] == "card-orders.a1b2c.tmprl.cloud:7233"
    assert config["namespace"] == "card-orders.a1b2c"
    assert config["tls"] == TLSConfig(client_cert=client.cert.read_bytes(), client_private_key=client.key.read_bytes())
    settings = TemporalSettings()  # what callers log and use as the namespace
    assert (settings.address, settings.namespace) == ("card-orders.a1b2c.tmprl.cloud:7233", "card-orders.a1b2c")

    # The temporal CLI resolves the very same file, profile and variable.
    shown = subprocess.run(
        [temporal_cli(), "config", "get", "-o", "json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["address"] == config["target_host"]

    # A variable wins over the profile, in both.
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "card-orders-staging.a1b2c")
    assert connect_config()["namespace"] == "card-orders-staging.a1b2c"


async def test_an_api_key_turns_tls_on_and_is_never_logged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "card-orders.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "card-orders.a1b2c")
    monkeypatch.setenv("TEMPORAL_API_KEY", API_KEY)
    config = connect_config()
    assert config["api_key"] == API_KEY
    assert config["tls"] is True  # the system's roots verify Temporal Cloud
    assert describe(config) == (
        "address card-orders.a1b2c.tmprl.cloud:7233, namespace card-orders.a1b2c, TLS on, auth API key"
    )

    with caplog.at_level(logging.DEBUG):
        client = await _lazy_connect(tmp_path)
    assert client.service_client.config.api_key == API_KEY
    assert "auth API key" in caplog.text
    assert API_KEY not in caplog.text


async def _lazy_connect(tmp_path: Path) -> Client:
    """``connect(lazy=True)`` builds the client (and logs its line) without dialing anything."""
    codec = load_codec(generate_keys_file(tmp_path / "codec-keys.json"))
    return await connect(codec=codec, lazy=True)


async def test_temporal_tls_false_is_respected_even_with_an_api_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEMPORAL_API_KEY", API_KEY)
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    # Not even read once TLS is off.
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(tmp_path / "absent.crt"))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(tmp_path / "absent.key"))
    config = connect_config()
    assert config["tls"] is False
    assert describe(config).endswith("TLS off, auth API key")
    with caplog.at_level(logging.WARNING):
        await _lazy_connect(tmp_path)
    assert "WITHOUT TLS" in caplog.text and API_KEY not in caplog.text


def test_temporal_tls_true_alone_verifies_with_the_system_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    assert connect_config()["tls"] == TLSConfig()
    monkeypatch.setenv("TEMPORAL_TLS", "1")
    assert connect_config()["tls"] == TLSConfig()


@pytest.mark.parametrize("value", ["off", "no", "yes", ""])
def test_a_temporal_tls_that_is_not_a_boolean_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # The SDK alone would read "off" as "TLS on" (any TEMPORAL_TLS* variable creates a TLS section).
    monkeypatch.setenv("TEMPORAL_TLS", value)
    with pytest.raises(TemporalConfigError, match=re.escape(f"TEMPORAL_TLS='{value}': expected true or false")):
        connect_config()


@pytest.mark.parametrize(
    ("variable", "what"),
    [
        ("TEMPORAL_TLS_CLIENT_CERT_PATH", "client certificate"),
        ("TEMPORAL_TLS_CLIENT_KEY_PATH", "client private key"),
        ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "server CA certificate"),
    ],
)
def test_a_missing_tls_file_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certs: TemporalPki, variable: str, what: str
) -> None:
    client = certs.client("worker")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(client.key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certs.ca_cert))
    missing = tmp_path / "nowhere" / "file.pem"
    monkeypatch.setenv(variable, str(missing))
    with pytest.raises(TemporalConfigError) as info:
        connect_config()
    assert str(info.value) == f"{variable}={missing}: no such file (the Temporal {what})"


def test_a_missing_tls_file_of_a_toml_profile_names_the_key_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certs: TemporalPki
) -> None:
    path = _toml(
        tmp_path,
        f"""
[profile.selfhosted]
address = "temporal.bank.internal:7233"
[profile.selfhosted.tls]
server_ca_cert_path = "{tmp_path / "missing-ca.crt"}"
""",
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(path))
    monkeypatch.setenv("TEMPORAL_PROFILE", "selfhosted")
    with pytest.raises(TemporalConfigError) as info:
        connect_config()
    message = str(info.value)
    assert message.startswith(f"tls.server_ca_cert_path (profile 'selfhosted' of {path})={tmp_path / 'missing-ca.crt'}")
    assert message.endswith("no such file (the Temporal server CA certificate)")


def test_a_client_certificate_without_its_key_is_refused(monkeypatch: pytest.MonkeyPatch, certs: TemporalPki) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs.client("worker").cert))
    with pytest.raises(TemporalConfigError, match="TEMPORAL_TLS_CLIENT_KEY_PATH"):
        connect_config()


def test_a_missing_config_file_or_profile_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(typo))
    with pytest.raises(TemporalConfigError, match=re.escape(f"TEMPORAL_CONFIG_FILE={typo}: no such file")):
        connect_config()
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(_toml(tmp_path, '[profile.default]\naddress = "x:1"\n')))
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    with pytest.raises(TemporalConfigError, match=r"profile 'prod' of .*temporal\.toml.*not found"):
        TemporalSettings()  # callers that only read settings see the same error


def test_an_explicit_override_wins_and_keeps_the_configured_security(
    monkeypatch: pytest.MonkeyPatch, certs: TemporalPki
) -> None:
    client = certs.client("worker")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.bank.internal:7233")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(client.key))
    config = connect_config(TemporalSettings(address="127.0.0.1:17233", namespace="test"))
    assert (config["target_host"], config["namespace"]) == ("127.0.0.1:17233", "test")
    assert isinstance(config["tls"], TLSConfig) and config["tls"].client_cert == client.cert.read_bytes()


def test_the_documented_toml_example_is_a_valid_profile_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    guide = (REPO_ROOT / "docs" / "operations.md").read_text()
    section = guide[guide.index("## Connecting to Temporal") :]
    example = section[section.index("```toml\n") + len("```toml\n") :]
    example = example[: example.index("```")]
    # Strict: a misspelt key would be an error, not silently ignored.
    profiles = ClientConfig.load(config_source=example, config_file_strict=True).profiles
    assert set(profiles) == {"default", "prod", "onprem"}
    assert profiles["prod"].address == "card-orders.a1b2c.tmprl.cloud:7233"
    assert profiles["onprem"].tls is not None and profiles["onprem"].tls.server_root_ca_cert == Path(
        "/etc/d1-card-orders/temporal/bank-ca.crt"
    )
    # Its certificate paths do not exist here: the error names the key, the profile and the file.
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(_toml(tmp_path, example)))
    monkeypatch.setenv("TEMPORAL_PROFILE", "onprem")
    with pytest.raises(TemporalConfigError, match=r"^tls\.client_cert_path \(profile 'onprem' of "):
        connect_config()


def test_the_local_ca_issues_the_temporal_gateway_and_client_certificates_once(tmp_path: Path) -> None:
    pki = ensure_local_pki(tmp_path / "pki", [])
    first = ensure_temporal_pki(pki, ["worker", "receiver"])
    gateway = x509.load_pem_x509_certificate(first.gateway_server.cert.read_bytes())
    san = gateway.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1"} <= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert ExtendedKeyUsageOID.SERVER_AUTH in gateway.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    worker = x509.load_pem_x509_certificate(first.client("worker").cert.read_bytes())
    assert worker.subject.rfc4514_string() == "CN=temporal-client/worker"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in worker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    worker.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()))
    assert first.client("worker").key.stat().st_mode & 0o777 == 0o600
    # Run again (every start of a local stack): kept, not re-issued.
    again = ensure_temporal_pki(pki, ["worker", "receiver"])
    assert again.client("worker").cert.read_bytes() == first.client("worker").cert.read_bytes()
    assert again.gateway_server.cert.read_bytes() == first.gateway_server.cert.read_bytes()
