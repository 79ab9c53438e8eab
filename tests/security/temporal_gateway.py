"""A real TLS-terminating gRPC gateway (Debian's nginx) in front of the Temporal dev server.

The dev server speaks plain gRPC only, so the mutual-TLS path of ``temporal_client`` is
exercised through nginx: TLS with the local CA's gateway certificate, client certificates
required (``ssl_verify_client on``) and checked against one CA, HTTP/2 and ``grpc_pass``
to the dev server on loopback. nginx runs in the foreground as the test's own child, with
every path (pid, temp files, logs) under the test's directory, as root or not.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from security.pki import CertPair


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def nginx_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True)
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stderr + out.stdout)
    if found is None:
        raise RuntimeError(f"cannot read the nginx version from {out.stderr!r}")
    return tuple(int(part) for part in found.groups())


@dataclass(frozen=True)
class Gateway:
    address: str
    error_log: Path
    access_log: Path


def gateway_config(
    *, tmp: Path, listen_port: int, upstream_port: int, server: CertPair, client_ca: Path, version: tuple[int, ...]
) -> str:
    # "http2 on;" exists from nginx 1.25.1; Debian 12 ships 1.22, where HTTP/2 is a listen flag.
    modern = version >= (1, 25, 1)
    listen = f"listen 127.0.0.1:{listen_port} ssl;" if modern else f"listen 127.0.0.1:{listen_port} ssl http2;"
    temp = {name: tmp / f"{name}-temp" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    # As root, nginx would hand requests to "nobody", who cannot enter the test's 0700 tmp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
daemon off;
master_process on;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    # One line per request: who presented which certificate, and whether it reached Temporal.
    log_format gateway '$status verify=$ssl_client_verify dn="$ssl_client_s_dn" upstream=$upstream_addr $request_uri';
    access_log {tmp / "access.log"} gateway;
    {"".join(f"{name}_temp_path {path}; " for name, path in temp.items())}
    server {{
        {listen}
        {"http2 on;" if modern else ""}
        ssl_certificate {server.cert};
        ssl_certificate_key {server.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client on;
        ssl_client_certificate {client_ca};
        ssl_verify_depth 2;
        # nginx itself completes the handshake without a certificate and answers 400 later;
        # OpenSSL's "Require" makes a client without one fail the TLS handshake already.
        # (A certificate from another CA still passes the handshake and gets nginx's 400.)
        ssl_conf_command VerifyMode Require;
        # Workers long-poll for up to ~70 s; payloads are bounded by Temporal (4 MB), not here.
        grpc_read_timeout 300s;
        grpc_send_timeout 300s;
        client_max_body_size 0;
        client_body_timeout 300s;
        keepalive_requests 100000;
        location / {{
            grpc_pass grpc://127.0.0.1:{upstream_port};
        }}
    }}
}}
"""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def run_gateway(
    binary: str, *, tmp: Path, listen_port: int, upstream_port: int, server: CertPair, client_ca: Path
) -> Iterator[Gateway]:
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(
        gateway_config(
            tmp=tmp,
            listen_port=listen_port,
            upstream_port=upstream_port,
            server=server,
            client_ca=client_ca,
            version=nginx_version(binary),
        )
    )
    out = open(tmp / "nginx.out", "wb")  # owned by the child until it exits
    # -e: the startup log goes to our file too, not to /var/log/nginx (absent or not ours).
    proc = subprocess.Popen(
        [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")], stdout=out, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while not _port_open(listen_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                logs = [p.read_text() for p in (tmp / "error.log", tmp / "nginx.out") if p.exists()]
                raise RuntimeError(f"nginx did not start (exit {proc.poll()}):\n" + "\n".join(logs))
            time.sleep(0.05)
        yield Gateway(f"127.0.0.1:{listen_port}", tmp / "error.log", tmp / "access.log")
    finally:
        proc.terminate()  # SIGTERM: nginx's fast shutdown, workers included
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
