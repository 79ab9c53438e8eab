"""Kept for tests that import it from here: the one implementation is ``stack/servers.py``."""

from stack.servers import free_port, serve

__all__ = ["free_port", "serve"]
