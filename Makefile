# Every install step of Tingshen lives here: `make run` and `make test` work on a fresh
# Debian 12 machine (root, Python 3.11, no venv).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall into the venv only when pyproject.toml changes. `make run` installs what running
# needs; test, lint, pytest and bench install the development tools too (`.[dev]`), which
# covers running, so that install marks both.
RUN_INSTALLED := $(VENV)/.stamp-run
DEV_INSTALLED := $(VENV)/.stamp-dev

# Debian packages the server uses: ffmpeg renders the review composite when a hearing closes,
# with a CJK font so that Chinese names and captions render, found through fontconfig's fc-list
# (only recommended by the font, and recommends are not installed).
RUN_SYSTEM_PACKAGES := ffmpeg fonts-wqy-microhei fontconfig
# What the tests add: PostgreSQL and Redis servers run by the tests, sox/espeak-ng for speech
# fixtures, Chromium for the browser tests (the CJK font renders Chinese names in its pages and
# screenshots), iproute2 and iptables for the network-fault tests (namespaces, NFQUEUE:
# tests/faults.py).
SYSTEM_PACKAGES := $(RUN_SYSTEM_PACKAGES) postgresql redis-server sox espeak-ng chromium \
                   iproute2 iptables
# What the benchmarks add: real English speech with transcripts (LibriVox sentences) for the
# transcription benchmark; its Mandarin comes from PyPI wheels it fetches itself.
BENCH_SYSTEM_PACKAGES := $(SYSTEM_PACKAGES) pocketsphinx-testdata

.PHONY: help install system-deps run-system-deps bench-system-deps run test lint pytest bench \
        clean

help:
	@echo "make run          install what running needs, migrate, seed the demo hearing, serve on"
	@echo "                  http://127.0.0.1:8080"
	@echo "make test         install (apt packages included), then lint and the whole test suite"
	@echo "make lint         ruff, mypy and import-linter"
	@echo "make bench        run the benchmarks (BENCH=registry for one); figures go to docs/benchmarks.md"
	@echo "make system-deps  install the Debian packages the tests need that are missing"
	@echo "make clean        remove the venv and caches (var/, the server's data, is kept)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(DEV_INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@ $(RUN_INSTALLED)

install: $(DEV_INSTALLED)

# $(call apt_missing,PACKAGES): apt-get install those of PACKAGES that are not installed.
define apt_missing
	@missing=(); \
	for pkg in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q 'install ok installed' \
	    || missing+=("$$pkg"); \
	done; \
	if [ $${#missing[@]} -eq 0 ]; then echo "system packages present: $(1)"; exit 0; fi; \
	echo "installing missing system packages: $${missing[*]}"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=(); \
	elif command -v sudo >/dev/null; then sudo=(sudo); \
	else echo "error: Debian packages missing ($${missing[*]}); run make as root or install sudo" >&2; exit 1; fi; \
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q --no-install-recommends "$${missing[@]}"
endef

run-system-deps:
	$(call apt_missing,$(RUN_SYSTEM_PACKAGES))

system-deps:
	$(call apt_missing,$(SYSTEM_PACKAGES))

run: run-system-deps $(RUN_INSTALLED)
	exec $(BIN)/tingshen serve --seed-demo

# The suite runs in this many processes (pytest-xdist): its tests mostly wait on real media,
# browsers and timers, so two halve its time even on two cores. Three were no faster on a
# quiet machine (14.6 min against 13.8: the media tests slowed 2-4 times) and failed more
# tests by load. 0 runs it in this process. Tests marked `alone` measure media in real time
# (how much of a weak link's audio is heard, at what frame rate) or take minutes of both cores:
# they run after the rest, one at a time, so that the suite's other process (Whisper,
# Chromium) and they do not starve each other. In CI beside it the publishers in the weak-link
# test's own process sent a third of their audio.
PYTEST_WORKERS ?= 2

# Every check runs even if an earlier one fails, so one run shows all problems; the exit code
# is non-zero if any failed (pytest's 5, "no tests collected", included).
test: system-deps $(DEV_INSTALLED)
	@failed=(); \
	run() { echo "== $$*"; "$$@" || failed+=("$$1"); }; \
	run $(BIN)/ruff check .; \
	run $(BIN)/mypy; \
	run $(BIN)/lint-imports; \
	run $(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=30 -m "not alone"; \
	run $(BIN)/pytest -m alone --durations=10; \
	if [ $${#failed[@]} -ne 0 ]; then echo "make test: FAILED: $${failed[*]##*/}" >&2; exit 1; fi; \
	echo "make test: all checks passed"

lint: $(DEV_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: system-deps $(DEV_INSTALLED)
	$(BIN)/pytest $(PYTEST_ARGS)

# Every tests/bench/bench_NAME.py writes its own section of docs/benchmarks.md;
# `make bench BENCH=registry` runs one of them.
BENCH ?= $(patsubst tests/bench/bench_%.py,%,$(wildcard tests/bench/bench_*.py))

bench-system-deps:
	$(call apt_missing,$(BENCH_SYSTEM_PACKAGES))

bench: bench-system-deps $(DEV_INSTALLED)
	for name in $(BENCH); do $(BIN)/python -m tests.bench.bench_$$name; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache \
	  .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
