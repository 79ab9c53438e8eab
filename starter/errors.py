"""What the Python API (starter/api.py) raises when Temporal or the order refuses a call."""

from __future__ import annotations


class OrderRefused(Exception):
    """The order conflicts with an open order for the same card."""


class ChangeRejected(Exception):
    """A pull & change was refused before D1 was called (finished or shipped order, a change
    already pending, ...) or D1 refused the request itself; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
