"""Benchmarks: the product against a bare Temporal workflow of the same shape, in one run.

``python -m bench`` (``make bench``) starts its own Temporal dev server, D1 emulator,
receiver and workers as separate processes (so CPU and memory can be charged to each),
runs the phases and writes ``bench/results/latest.json`` and the results block of
``docs/benchmarks.md``. Every performance claim is a ratio against a baseline measured
in the same run on the same machine; nothing here asserts absolute timings.
"""
