"""``python -m bench.sandbox`` replays a recorded order through each runner it compares."""

from __future__ import annotations

from bench.sandbox import RUNNERS, run


async def test_every_runner_replays_the_recorded_order_and_is_priced() -> None:
    result = await run(["happy"], rounds=1, repeat=1)
    cpu = result["cpu_ms_per_history"]
    assert isinstance(cpu, dict) and set(cpu) == set(RUNNERS)
    assert all(v > 0 for v in cpu.values())
    assert result["ratio_to_stock"]["stock"] == 1.0  # type: ignore[index]
