"""Events out: the catalogue, Standard Webhooks delivery to the issuer's endpoints, and the feed (docs/events.md)."""
