"""Where a webhook may go: HTTPS to a public address (docs/events.md, "Endpoints").

A webhook URL is chosen by whoever manages the issuer's endpoints; it must not become a
way into the bank's network. So the target is resolved and refused when any of its
addresses is private, loopback, link-local (cloud metadata lives there), multicast or
reserved, unless the operator allowed that network (``EVENTS_ALLOWED_NETWORKS``). Plain
``http://`` and loopback targets are for development only (``EVENTS_ALLOW_LOOPBACK``).
Checked at registration and again before every delivery (the name may resolve elsewhere
by then).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(ValueError):
    """The URL may not receive webhooks; the message says why (no secret, no body)."""


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_url(
    url: str, *, allow_loopback: bool = False, allowed_networks: Iterable[str] = (), resolver: Resolver = resolve
) -> str:
    """``url`` if webhooks may go there, else :class:`EndpointRefused`."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise EndpointRefused(f"not a URL: {err}") from None
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise EndpointRefused("the URL must be https://host/...")
    if parts.username or parts.password:
        raise EndpointRefused("the URL must not carry credentials")
    if parts.fragment:
        raise EndpointRefused("the URL must not have a fragment")
    try:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
    except (OSError, ValueError) as err:
        raise EndpointRefused(f"{host} does not resolve: {err}") from None
    if not addresses:
        raise EndpointRefused(f"{host} does not resolve")
    allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]
    loopback = all(a.is_loopback for a in addresses)
    if parts.scheme == "http" and not (allow_loopback and loopback):
        raise EndpointRefused("the URL must use https:// (plain http only to loopback in development)")
    for address in addresses:
        if any(address in network for network in allowed):
            continue
        if address.is_loopback and allow_loopback:
            continue
        if _internal(address):
            raise EndpointRefused(
                f"{host} resolves to {address}, a private, loopback, link-local or reserved address "
                "(an operator may allow the network: EVENTS_ALLOWED_NETWORKS)"
            )
    return url


def _internal(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _internal(address.ipv4_mapped)
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )
