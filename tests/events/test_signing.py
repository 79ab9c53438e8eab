"""Standard Webhooks signing (events/signing.py) and the URL checks (events/endpoints.py): pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from events.endpoints import EndpointRefused, check_url
from events.signing import is_secret, new_secret, signed_headers


def test_a_signature_verifies_with_the_stock_library_and_each_rotating_secret() -> None:
    old, new = new_secret(), new_secret()
    assert is_secret(old) and old.startswith("whsec_") and old != new
    body = '{"id":"evt_1","type":"order.shipped"}'
    headers = signed_headers("evt_1", body, [old, new])
    assert headers["webhook-id"] == "evt_1" and len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers) == {"id": "evt_1", "type": "order.shipped"}
    assert Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(old).verify(body, signed_headers("evt_1", body, [old], now=datetime.now(UTC) - timedelta(minutes=6)))
    with pytest.raises(ValueError, match="without a secret"):
        signed_headers("evt_1", body, [])


@pytest.mark.parametrize("value", ["whsec_", "whsec_abc", "sk_" + "A" * 44, "whsec_" + "!" * 44])
def test_not_a_secret(value: str) -> None:
    assert not is_secret(value)


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "addresses", "reason"),
    [
        ("https://hooks.bank.example/x", ["10.0.0.8"], "private"),
        ("https://hooks.bank.example/x", ["93.184.216.34", "172.16.5.4"], "private"),  # one of them is enough
        ("https://hooks.bank.example/x", ["169.254.169.254"], "link-local"),
        ("https://hooks.bank.example/x", ["::ffff:10.0.0.8"], "private"),
        ("https://hooks.bank.example/x", ["100.64.0.1"], "private"),  # carrier-grade NAT
        ("https://hooks.bank.example/x", ["0.0.0.0"], "private"),  # noqa: S104 - an address to refuse
        ("http://hooks.bank.example/x", ["93.184.216.34"], "https"),
        ("ftp://hooks.bank.example/x", ["93.184.216.34"], "https"),
        ("https://a:b@hooks.bank.example/x", ["93.184.216.34"], "credentials"),
        ("https://127.0.0.1/x", ["127.0.0.1"], "loopback"),
    ],
)
def test_refused_targets(url: str, addresses: list[str], reason: str) -> None:
    with pytest.raises(EndpointRefused, match=reason):
        check_url(url, resolver=resolver(*addresses))


def test_accepted_targets() -> None:
    assert check_url("https://hooks.bank.example/x", resolver=resolver("93.184.216.34"))
    assert check_url("https://10.9.8.7/x", allowed_networks=["10.9.0.0/16"], resolver=resolver("10.9.8.7"))
    assert check_url("http://127.0.0.1:8090/", allow_loopback=True, resolver=resolver("127.0.0.1"))
    with pytest.raises(EndpointRefused, match="https"):  # plain http only to loopback, even in development
        check_url("http://hooks.bank.example/x", allow_loopback=True, resolver=resolver("93.184.216.34"))


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(EndpointRefused, match="does not resolve"):
        check_url("https://nowhere.example/x", resolver=fails)
