"""``python -m emulator``: serve the D1 sandbox with uvicorn (settings from EMULATOR_* variables)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import uvicorn

from emulator.app import create_app
from emulator.config import EmulatorSettings, uvicorn_tls_options
from emulator.state import EmulatorState
from security.redaction import install_log_redaction


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", help="bind address (default: EMULATOR_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: EMULATOR_PORT or 8443)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = EmulatorSettings(**overrides)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    if not settings.tls_enabled or settings.tls_ca_file is None:
        logging.getLogger("emulator").warning(
            "DEVELOPMENT MODE: the emulator does not require client certificates (real D1 is mTLS-only); "
            "set EMULATOR_TLS_CERT_FILE, EMULATOR_TLS_KEY_FILE and EMULATOR_TLS_CA_FILE"
        )
    app = create_app(settings)
    state: EmulatorState = app.state.emulator
    scheme = "https" if settings.tls_enabled else "http"
    base = f"{scheme}://{settings.host}:{settings.port}"
    print(f"D1 emulator: token   {base}/authz/v1/oauth2/token", flush=True)
    print(f"D1 emulator: banking {base}/banking/v1", flush=True)
    if settings.admin_api_enabled:
        print(f"D1 emulator: admin   {base}/_emulator/stats (sandbox only, no auth: never expose it)", flush=True)
    else:
        print("D1 emulator: admin API off (EMULATOR_ADMIN_API_ENABLED=true turns it on)", flush=True)
    print(
        f"D1 emulator: encryption public key (kid={state.encryption_keys.kid}) for the issuer side: "
        f"{state.encryption_keys.public_path}",
        flush=True,
    )
    print(f"D1 emulator: issuer keys (JWKS) read from {settings.issuer_keys_file}", flush=True)
    print(f"D1 emulator: notifications go to {settings.receiver_base_url} ({settings.notification_mode})", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, **uvicorn_tls_options(settings))


if __name__ == "__main__":
    main()
