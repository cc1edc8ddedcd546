# Two commands on a fresh machine:
#   make demo   — run secmon on the embedded default (Kafka-compatible broker + SQLite)
#   make test   — install what the tests need and run them
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install system-deps lint bench

$(BIN)/secmon: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/secmon

install: $(BIN)/secmon

demo: install
	$(BIN)/secmon demo

# Real peers the tests talk to: PostgreSQL (must run on 127.0.0.1:5432), Prometheus and
# Alertmanager binaries (Debian packages), Chromium for the browser test.
system-deps:
	./.ci/system-deps

test: install system-deps
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check secmon tests bench
	$(BIN)/mypy secmon bench tests

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run
