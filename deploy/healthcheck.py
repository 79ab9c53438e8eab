"""Container health checks without curl or wget in the image (python:3.11-slim has neither).

    python deploy/healthcheck.py http URL      # healthy: an HTTP answer below 500
    python deploy/healthcheck.py tcp PORT      # healthy: something accepts on 127.0.0.1:PORT

Mutual-TLS servers (emulator, receiver) get the ``tcp`` check: an unauthenticated HTTPS
probe would be refused by design; so does the codec server, whose HTTPS certificate comes
from a CA this image does not trust.
"""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request


def check(kind: str, target: str) -> bool:
    if kind == "tcp":
        with socket.create_connection(("127.0.0.1", int(target)), timeout=3):
            return True
    if kind == "http":
        if not target.startswith(("http://", "https://")):
            raise ValueError("http check needs an http(s):// URL")
        try:
            with urllib.request.urlopen(target, timeout=3) as resp:  # noqa: S310 - URL scheme checked above
                return int(resp.status) < 500
        except urllib.error.HTTPError as err:
            return err.code < 500
    raise ValueError(f"unknown check {kind!r}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return 0 if check(argv[0], argv[1]) else 1
    except (OSError, ValueError) as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
