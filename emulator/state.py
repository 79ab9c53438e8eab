"""The emulator's in-memory world, wired together once per application.

Everything is in memory on purpose: the emulator is a sandbox, and a restart is a clean
D1 (only the encryption key pair persists, so the issuer side keeps working).
"""

from __future__ import annotations

from emulator.config import EmulatorSettings
from emulator.decryption import CardDataDecryptor
from emulator.faults import Faults
from emulator.issuer_keys import IssuerKeyRegistry
from emulator.keys import load_or_create_encryption_keys
from emulator.notifier import Notifier
from emulator.orders import OrderBook, OrderService
from emulator.simulator import ProductionSimulator
from emulator.stats import Stats
from emulator.tokens import TokenService


class EmulatorState:
    """Reachable as ``app.state.emulator``; background work starts and stops with the app."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.encryption_keys = load_or_create_encryption_keys(settings.state_dir)
        self.issuer_keys = IssuerKeyRegistry(settings.issuer_keys_file)
        self.tokens = TokenService(self.issuer_keys, settings.token_lifetime_s)
        self.stats = Stats()
        self.faults = Faults(default_step_delay_ms=settings.step_delay_ms)
        self.notifier = Notifier(settings, self.stats, self.faults)
        self.simulator = ProductionSimulator(settings, self.faults, self.stats, self.notifier)
        self.orders = OrderService(
            book=OrderBook(),
            decryptor=CardDataDecryptor(self.encryption_keys, settings.expiry_format),
            stats=self.stats,
            on_created=self.simulator.start,
            take_data_exception=self.faults.take_data_exception,
        )

    async def start(self) -> None:
        await self.notifier.start()

    async def stop(self) -> None:
        await self.simulator.stop()
        await self.notifier.stop()

    async def reset(self, *, forget_orders: bool) -> None:
        """Zero the counters, clear faults and captured bodies; optionally forget all orders
        (their simulations and pending notifications are cancelled)."""
        if forget_orders:
            await self.simulator.stop()
            await self.notifier.cancel_all()
            self.orders.book.clear()
        self.stats.reset()
        self.faults.reset()
        self.notifier.captured.clear()
