"""Certificates for Temporal behind a mutual-TLS gateway, from the local CA (tests only)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from security.pki import DEFAULT_HOSTS, CertPair, LocalPki, TemporalPki, ensure_leaf, load_ca


def ensure_temporal_pki(pki: LocalPki, clients: Iterable[str], *, hosts: Sequence[str] = DEFAULT_HOSTS) -> TemporalPki:
    """The gateway's server certificate and one client certificate per name in ``clients``
    (CN ``temporal-client/<name>``), issued or renewed."""
    ca = load_ca(pki)
    gateway = CertPair(pki.directory / "temporal-gateway-server.crt", pki.directory / "temporal-gateway-server.key")
    temporal = TemporalPki(directory=pki.directory, ca_cert=pki.ca_cert, gateway_server=gateway)
    ensure_leaf(ca, temporal.gateway_server, "temporal-gateway (local)", hosts=hosts)
    for name in clients:
        ensure_leaf(ca, temporal.client(name), f"temporal-client/{name}")
    return temporal
