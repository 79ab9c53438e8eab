# Two commands for a newcomer: `make run` (the whole stack with a sample order) and
# `make test` (the whole test suite). Both create the virtualenv on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The workflow sandbox re-imports workflow modules per order: ship bytecode so it does
	@# not recompile them each time, even where PYTHONDONTWRITEBYTECODE is set.
	$(PY) -m compileall -q d1 workflows activities
	@touch $(STAMP)

venv: $(STAMP)

## The whole stack (codec server, Temporal dev server + UI, D1 emulator, receiver, worker),
## a sample order flowing through; stays up until Ctrl-C.
run: $(STAMP)
	$(PY) -m stack

## Same, but exits once the sample order has ended (0 if delivered; for scripts).
demo: $(STAMP)
	$(PY) -m stack --exit-after-sample

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## The fast tier (under a minute): unit tests, the workflows on the time-skipping server
## with production timing, and the replay of recorded histories. No emulator, no HTTP.
test-fast: $(STAMP)
	$(PY) -m pytest tests/unit tests/workflows tests/histories/test_replay.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

## Benchmark: the product against a bare Temporal workflow of the same shape, results in
## docs/benchmarks.md (about 5 minutes on 2 cores); `make bench BENCH_ARGS=--quick` is a smoke run.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf .state test-output
