# Two commands for a newcomer: `make run` (the whole stack with a sample order) and
# `make test` (the whole test suite). Both create the virtualenv on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Everything the processes load (the benchmark's baseline workflow too, so that both sides of
# `make bench` run from bytecode). The workflow sandbox re-imports the workflow modules for
# every new order (the rest passes through once, worker.py PASSTHROUGH_MODULES): ship
# bytecode so that nothing is compiled from source again, even where
# PYTHONDONTWRITEBYTECODE is set. compileall skips files whose bytecode is current.
BYTECODE := d1 contracts workflows activities events receiver starter issuer_api security observability stack bench \
            worker.py settings temporal_client.py

.PHONY: run demo test test-fast lint docs bench bytecode clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## Bytecode for every module the processes load (current after any edit).
bytecode: $(STAMP)
	@$(PY) -m compileall -q $(BYTECODE)

venv: $(STAMP)

## The whole stack (codec server, Temporal dev server + UI, D1 emulator, receiver, worker),
## a sample order flowing through; stays up until Ctrl-C.
run: bytecode
	$(PY) -m stack

## Same, but exits once the sample order has ended (0 if delivered; for scripts).
demo: bytecode
	$(PY) -m stack --exit-after-sample

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## The fast tier (under a minute): unit tests, the workflows on the time-skipping server
## with production timing, and the replay of recorded histories. No emulator, no HTTP.
test-fast: $(STAMP)
	@# Every test module still imports (a stale name in a slow tier shows here, in seconds).
	$(PY) -m pytest --collect-only -q tests > /dev/null
	$(PY) -m pytest tests/unit tests/workflows tests/histories/test_replay.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

## docs/configuration.md from the settings classes (tests/unit/test_settings_reference.py
## fails when the committed file is out of date), docs/openapi.json from the issuer API
## (tests/issuer_api/test_openapi_document.py) and docs/events.asyncapi.json from events/.
docs: $(STAMP)
	$(PY) -m tools.settings_reference
	$(PY) -m issuer_api.document
	$(PY) -m events.asyncapi

## Benchmark: the product against a bare Temporal workflow of the same shape (and the batched
## one), results in docs/benchmarks.md (under 10 minutes on 2 cores); `make bench BENCH_ARGS=--quick`
## is a smoke run.
bench: bytecode
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf .state test-output
