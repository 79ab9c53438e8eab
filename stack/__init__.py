"""The local-stack launcher behind ``make run``: every process of the product on one machine."""
