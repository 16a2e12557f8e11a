# Every install step of Tingshen lives here: `make run` and `make test` work on a fresh
# Debian 12 machine (root, Python 3.11, no venv).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall into the venv only when pyproject.toml changes.
INSTALLED := $(VENV)/.stamp-install

# Debian packages the tests and the server use: PostgreSQL and Redis servers run by the tests,
# ffmpeg/sox/espeak-ng for media and speech fixtures, Chromium for the browser tests, a CJK
# font so that Chinese names render in pages, screenshots and the review composite; iproute2
# and iptables for the network-fault tests (namespaces, NFQUEUE: tests/faults.py).
SYSTEM_PACKAGES := postgresql redis-server ffmpeg sox espeak-ng chromium fonts-wqy-microhei \
                   iproute2 iptables

.PHONY: help install system-deps run test lint pytest bench clean

help:
	@echo "make run          install, migrate, seed the demo hearing, serve on http://127.0.0.1:8080"
	@echo "make test         install (apt packages included), then lint and the whole test suite"
	@echo "make lint         ruff, mypy and import-linter"
	@echo "make bench        run the benchmarks (BENCH=registry for one); figures go to docs/benchmarks.md"
	@echo "make system-deps  install the Debian packages that are missing"
	@echo "make clean        remove the venv and caches (var/, the server's data, is kept)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

install: $(INSTALLED)

system-deps:
	@missing=(); \
	for pkg in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'install ok installed' \
	    || missing+=("$$pkg"); \
	done; \
	if [ $${#missing[@]} -eq 0 ]; then echo "system packages present: $(SYSTEM_PACKAGES)"; exit 0; fi; \
	echo "installing missing system packages: $${missing[*]}"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=(); \
	elif command -v sudo >/dev/null; then sudo=(sudo); \
	else echo "error: Debian packages missing ($${missing[*]}); run make as root or install sudo" >&2; exit 1; fi; \
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q --no-install-recommends "$${missing[@]}"

run: $(INSTALLED)
	exec $(BIN)/tingshen serve --seed-demo

# Every check runs even if an earlier one fails, so one run shows all problems; the exit code
# is non-zero if any failed (pytest's 5, "no tests collected", included).
test: system-deps $(INSTALLED)
	@failed=(); \
	run() { echo "== $$*"; "$$@" || failed+=("$$1"); }; \
	run $(BIN)/ruff check .; \
	run $(BIN)/mypy; \
	run $(BIN)/lint-imports; \
	run $(BIN)/pytest; \
	if [ $${#failed[@]} -ne 0 ]; then echo "make test: FAILED: $${failed[*]##*/}" >&2; exit 1; fi; \
	echo "make test: all checks passed"

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: system-deps $(INSTALLED)
	$(BIN)/pytest $(PYTEST_ARGS)

# Every tests/bench/bench_NAME.py writes its own section of docs/benchmarks.md;
# `make bench BENCH=registry` runs one of them.
BENCH ?= $(patsubst tests/bench/bench_%.py,%,$(wildcard tests/bench/bench_*.py))

bench: system-deps $(INSTALLED)
	for name in $(BENCH); do $(BIN)/python -m tests.bench.bench_$$name; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache \
	  .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
