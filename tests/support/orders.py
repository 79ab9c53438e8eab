"""Valid sample orders for tests (the stack's samples: fake card data, a Luhn-valid test PAN)."""

from stack.samples import BASE_ORDER, TEST_PAN, sample_order

__all__ = ["BASE_ORDER", "TEST_PAN", "sample_order"]
