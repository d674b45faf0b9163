# Quick start:  make backtest   (set up what running needs, then run the sample backtest)
#               make test       (set up with the test extras too, then run the test suite)
VENV   ?= .venv
PYTHON ?= python3
PIP    := $(VENV)/bin/pip install --quiet --disable-pip-version-check
# One stamp per install: running needs the package and its dependencies only; the tests and
# the benchmark against backtesting.py add the `test` extra (pytest, backtesting, both SDKs).
RUN    := $(VENV)/.installed-run
TEST   := $(VENV)/.installed-test
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-test backtest test bench bench-startup chromium

setup: $(RUN)

setup-test: $(TEST)

$(RUN): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(TEST): $(RUN)
	$(PIP) -e '.[test,research,options]'
	touch $@

backtest: $(RUN)
	$(VENV)/bin/algo backtest configs/sma.yaml

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report test"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# One test process per core (pytest-xdist): the suite waits on sockets and child processes as much as it
# computes, and every test picks its own ports and folders.
test: $(TEST) chromium
	$(VENV)/bin/pytest -n auto

bench: $(TEST)
	$(VENV)/bin/python benchmarks/bench_sma.py

bench-startup: $(RUN)
	$(VENV)/bin/python benchmarks/bench_startup.py
