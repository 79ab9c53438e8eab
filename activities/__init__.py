"""Every side effect toward D1: token, order submission, status fetch, pull & change, tracking.

Activities are thin and idempotent; the D1 specifics live in small modules they call.
"""
