"""The emulator's in-memory world, wired together once per application.

Everything is in memory on purpose: the emulator is a sandbox, and a restart is a clean
D1 (only the encryption keyring persists, so the issuer side keeps working).
"""

from __future__ import annotations

from d1.program import load_program
from emulator.activation import Activator
from emulator.bulk import BulkShipper
from emulator.config import EmulatorSettings
from emulator.decryption import CardDataDecryptor
from emulator.faults import Faults
from emulator.holds import Holds
from emulator.issuer_keys import IssuerKeyRegistry
from emulator.keys import load_or_create_encryption_keys
from emulator.notifier import Notifier
from emulator.orders import OrderBook, OrderService
from emulator.pull_and_change import PullAndChangeService
from emulator.scenarios import Scenarios, load_rules_file
from emulator.simulator import ProductionSimulator
from emulator.stats import Stats
from emulator.tokens import TokenService
from emulator.tracking_hub import TrackingHub
from emulator.validation import RequestValidator


class EmulatorState:
    """Reachable as ``app.state.emulator``; background work starts and stops with the app."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.encryption_keys = load_or_create_encryption_keys(settings.state_dir)
        self.issuer_keys = IssuerKeyRegistry(settings.issuer_keys_file)
        self.tokens = TokenService(self.issuer_keys, settings.token_lifetime_s)
        self.stats = Stats()
        self.faults = Faults(default_step_delay_ms=settings.step_delay_ms)
        self.holds = Holds()
        self.notifier = Notifier(settings, self.stats, self.faults)
        self.activator = Activator(settings)
        # What D1 fixed for the issuer's program at onboarding, enforced on every order.
        self.program = load_program(settings.program_file)
        self.validator = RequestValidator(self.program, settings.expiry_format)
        self.scenarios = Scenarios(load_rules_file(settings.scenarios_file))
        self.bulk = BulkShipper(settings, self.faults, self.stats, self.notifier)
        self.simulator = ProductionSimulator(settings, self.faults, self.stats, self.notifier, self.bulk)
        self.simulator.activator = self.activator
        book = OrderBook()
        self.orders = OrderService(
            book=book,
            decryptor=CardDataDecryptor(self.encryption_keys, self.validator.expiry_format),
            stats=self.stats,
            on_created=self.simulator.start,
            take_data_exception=self.faults.take_data_exception,
            validator=self.validator,
            scenarios=self.scenarios,
        )
        self.pull_and_change = PullAndChangeService(
            settings, book, self.validator, self.stats, self.faults, self.notifier, self.simulator.emit_operation
        )
        self.tracking = TrackingHub(settings, self.validator, self.stats, self.faults, self.notifier)

    async def start(self) -> None:
        await self.notifier.start()
        await self.activator.start()

    async def stop(self) -> None:
        self.holds.release()
        await self.simulator.stop()
        await self.pull_and_change.stop()
        await self.tracking.stop()
        await self.activator.stop()
        await self.notifier.stop()

    async def reset(self, *, forget_orders: bool) -> None:
        """Zero the counters, clear faults and captured bodies, release held requests; optionally forget all orders and
        tracked cards (their simulations and pending notifications are cancelled)."""
        if forget_orders:
            await self.simulator.stop()
            await self.tracking.forget()
            await self.notifier.cancel_all()
            self.orders.book.clear()
        self.stats.reset()
        self.faults.reset()
        self.holds.reset()
        self.notifier.captured.clear()
        self.activator.reset()
        self.scenarios.reset()
        self.pull_and_change.reset()
        self.bulk.set_window(self.settings.bulk_window_ms)
