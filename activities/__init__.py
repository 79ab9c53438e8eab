"""Every side effect toward D1: token, JWE encryption, order submission, status fetch.

Activities are thin and idempotent; the D1 specifics live in small modules they call.
"""
