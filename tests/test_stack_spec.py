"""The stack description (stack/spec.py) gives a child process the settings it gives an
in-process component, and none of a developer's Temporal configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from security.codec import load_ring
from security.keys_tool import main as keys_tool
from settings import REPO_ROOT, D1ClientSettings, ReceiverSettings
from stack.env import settings_env
from stack.local import LocalStack
from stack.spec import Ports, ProcessKind, StackSpec

# What each process builds from its environment (worker.py, receiver/__main__.py,
# emulator/__main__.py, security/codec_server.py, starter/cli.py).
READS: dict[ProcessKind, tuple[str, ...]] = {
    "worker": ("TemporalSettings", "D1ClientSettings", "CodecSettings", "TelemetrySettings"),
    "receiver": ("TemporalSettings", "ReceiverSettings", "CodecSettings", "TelemetrySettings"),
    "emulator": ("EmulatorSettings",),
    "codec-server": ("CodecServerSettings", "CodecSettings"),
    "starter": ("TemporalSettings", "D1ClientSettings", "CodecSettings", "OrderTimingSettings"),
    "issuer-api": ("TemporalSettings", "D1ClientSettings", "CodecSettings", "OrderTimingSettings", "IssuerApiSettings"),
}

CHILD = """
import json, sys
import settings
from emulator.config import EmulatorSettings
from starter.api import timing_from_settings
classes = {name: getattr(settings, name, None) or EmulatorSettings for name in sys.argv[1:]}
out = {name: cls().model_dump(mode="json") for name, cls in classes.items()}
out["OrderTiming"] = timing_from_settings().model_dump(mode="json")
print(json.dumps(out))
"""


def _in_child(stack: LocalStack, kind: ProcessKind) -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *READS[kind]],
        env=stack.env(kind),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, dict[str, object]] = json.loads(done.stdout)
    return result


def _in_process(stack: LocalStack, kind: ProcessKind) -> dict[str, dict[str, object]]:
    built = {
        "TemporalSettings": stack.temporal_settings(),
        "D1ClientSettings": stack.d1_settings(),
        "ReceiverSettings": stack.receiver_settings(),
        "EmulatorSettings": stack.emulator_settings(),
        "CodecSettings": stack.codec_settings(kind),
        "CodecServerSettings": stack.codec_server_settings(),
        "TelemetrySettings": stack.telemetry_settings(kind),
        "OrderTimingSettings": stack.timing_settings(),
        "IssuerApiSettings": stack.issuer_api_settings(),
    }
    return {name: built[name].model_dump(mode="json") for name in READS[kind]}


@pytest.fixture
def hostile_temporal_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's Temporal Cloud setup: variables and a default TOML profile."""
    home = tmp_path / "home"
    (home / ".config" / "temporalio").mkdir(parents=True)
    (home / ".config" / "temporalio" / "temporal.toml").write_text(
        '[profile.default]\naddress = "cloud.example:7233"\nnamespace = "prod"\napi_key = "profile-key"\n'
        '[profile.dev]\naddress = "dev.example:7233"\n'
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name, value in {
        "TEMPORAL_API_KEY": "developer-key",
        "TEMPORAL_TLS": "true",
        "TEMPORAL_PROFILE": "dev",
        "TEMPORAL_ADDRESS": "elsewhere.example:7233",
        "TEMPORAL_NAMESPACE": "prod",
        "TEMPORAL_TLS_SERVER_NAME": "cloud.example",
        "TEMPORAL_GRPC_META_X": "y",
    }.items():
        monkeypatch.setenv(name, value)


def _spec(tmp_path: Path) -> StackSpec:
    return StackSpec(
        state_dir=tmp_path / "stack",
        other_issuers=("OTHERISS01",),
        ports=Ports.free(metrics=True),
        task_queue="spec-test",
        timing={"reconcile_after": timedelta(seconds=30), "close_grace": timedelta(milliseconds=500)},
        codec_server="dev-loopback",
        receiver_operators=True,
    ).override(D1ClientSettings, read_timeout_s=2.5)


@pytest.mark.parametrize("kind", list(READS))
def test_a_child_process_builds_the_settings_the_stack_builds_in_process(
    kind: ProcessKind, tmp_path: Path, hostile_temporal_config: None
) -> None:
    stack = _spec(tmp_path).ensure()
    child = _in_child(stack, kind)
    expected = _in_process(stack, kind)
    if kind in ("starter", "issuer-api"):  # it encrypts for D1 and never calls it: no D1 credentials in its environment
        keep = {"issuer_id", "program_file", "expiry_format", "encryption_public_key_file"}
        assert not {"D1_SIGNING_KEY_FILE", "D1_TLS_CLIENT_KEY_FILE"} & set(stack.variables(kind))
        child["D1ClientSettings"] = {k: v for k, v in child["D1ClientSettings"].items() if k in keep}
        expected["D1ClientSettings"] = {k: v for k, v in expected["D1ClientSettings"].items() if k in keep}
        assert child.pop("OrderTiming") == stack.order_timing().model_dump(mode="json")
    else:
        child.pop("OrderTiming")
    assert child == expected
    if kind == "worker":  # what the description says, to be sure the comparison is not of defaults
        assert child["D1ClientSettings"]["read_timeout_s"] == 2.5
        assert child["D1ClientSettings"]["tls_client_cert_file"] == str(stack.pki.issuer_client("TESTISS001").cert)
        assert child["TemporalSettings"]["task_queue"] == "spec-test"
        assert child["TelemetrySettings"]["metrics_port"] == stack.ports.worker_metrics


@pytest.mark.parametrize("kind", ["worker", "receiver", "starter"])
def test_a_child_process_ignores_the_developers_temporal_configuration(
    kind: ProcessKind, tmp_path: Path, hostile_temporal_config: None
) -> None:
    stack = _spec(tmp_path).ensure()
    env = stack.env(kind)
    assert {k for k in env if k.startswith("TEMPORAL_")} == {
        "TEMPORAL_CONFIG_FILE",
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_TASK_QUEUE",
    }
    probe = (
        "from temporal_client import connect_config, describe; from settings import TemporalSettings; "
        "print(describe(connect_config(TemporalSettings()))); print(TemporalSettings().address)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"address {stack.temporal_address}, namespace default, TLS off, auth none",
        stack.temporal_address,
    ]
    # The profile alone (no TEMPORAL_ADDRESS) says the same: only the stack's address and namespace.
    without = {k: v for k, v in env.items() if k not in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE")}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=without,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"address {stack.temporal_address}, namespace default, TLS off, auth none"


def test_what_a_child_cannot_be_told_is_refused(tmp_path: Path) -> None:
    stack = StackSpec(state_dir=tmp_path, transport="plain", timing={"submit_give_up_after": timedelta(hours=1)})
    local = stack.ensure()
    assert local.order_timing().submit_give_up_after == timedelta(hours=1)  # in-process: fine
    with pytest.raises(ValueError, match="no ORDER_\\* setting"):
        local.variables("starter")
    with pytest.raises(ValueError, match="secret"):
        settings_env(ReceiverSettings(oauth_client_secret=SecretStr("not-in-an-env-map")))
    with pytest.raises(ValueError, match="not OrderTiming fields"):
        StackSpec(state_dir=tmp_path, timing={"reconcile_afterr": timedelta(seconds=1)})
    with pytest.raises(ValueError, match="not D1ClientSettings fields"):
        stack.override(D1ClientSettings, read_timeout=2)


def test_each_process_holds_the_keys_of_its_role(tmp_path: Path) -> None:
    """The authority ring for the workers and the codec server, the receiver its own file, the
    CLI the ring with a named development operator; an edge file and one file per operator."""
    stack = _spec(tmp_path).ensure()
    authority = load_ring(stack.paths.codec_keys)
    files = {
        kind: Path(stack.variables(kind)["CODEC_KEYS_FILE"])
        for kind in ("worker", "receiver", "codec-server", "starter")
    }
    assert files["worker"] == files["codec-server"] == files["starter"] == stack.paths.codec_keys
    receiver = load_ring(files["receiver"])
    assert receiver.seal_as == "receiver" and list(receiver.keys) == [authority.active["receiver"]]
    assert stack.variables("starter")["CODEC_DEV_OPERATOR"] == "alice"
    assert "CODEC_DEV_OPERATOR" not in stack.variables("worker") | stack.variables("receiver")
    for sealer in ("edge", "operator:alice", "operator:bob"):
        issued = load_ring(stack.paths.issued_keys(sealer))
        # Its own key and the readers' key (results, views: security/codec.py), nothing else.
        assert issued.seal_as == sealer and sorted(k.role for k in issued.keys.values()) == sorted([sealer, "reader"])
        assert not any(key.derive for key in issued.keys.values())
    assert stack.paths.issued_keys("operator:bob") == stack.paths.state_dir / "operators" / "bob.json"


def test_a_rotated_key_reaches_the_process_files_on_the_next_start(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    stack = spec.ensure()
    before = stack.paths.issued_keys("receiver").read_bytes()
    assert keys_tool(["rotate", "--authority", str(stack.paths.codec_keys), "--role", "receiver"]) == 0
    spec.ensure()
    rotated = load_ring(stack.paths.issued_keys("receiver"))
    assert rotated.active["receiver"] == load_ring(stack.paths.codec_keys).active["receiver"]
    edge = stack.paths.issued_keys("edge").stat().st_mtime_ns
    spec.ensure()  # nothing changed: nothing rewritten
    assert stack.paths.issued_keys("edge").stat().st_mtime_ns == edge
    assert stack.paths.issued_keys("receiver").read_bytes() != before
