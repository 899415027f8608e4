# The two commands of the README: `make run` (console on the embedded default, with demo data) and
# `make test` (everything CI runs). Both install what they need first.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PORT ?= 8501
# Test processes (pytest-xdist) for everything but tests/e2e. Most tests wait on processes, PostgreSQL or
# Redis rather than compute, so three share two cores well; each has its own databases and Redis namespaces
# (tests/conftest.py). tests/e2e runs after, alone: it kills workers and restarts PostgreSQL on timelines
# that a machine loaded by two more test processes would stretch.
TEST_WORKERS ?= 3

.PHONY: run test install uv lint typecheck clean

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"

install: uv
	$(UV) sync --frozen

run: install
	$(UV) run opsconductor up --demo --port $(PORT)

test: install
	$(UV) run lint-imports
	$(UV) run ruff check .
	$(UV) run mypy
	$(UV) run pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report= --ignore=tests/e2e $(PYTEST_ARGS)
	$(UV) run pytest --cov --cov-append --cov-report=term tests/e2e $(PYTEST_ARGS)

lint: install
	$(UV) run ruff check .
	$(UV) run mypy
	$(UV) run ruff format --check .

clean:
	rm -rf .venv .pytest_cache .ruff_cache .coverage opsconductor.db opsconductor.db-* opsconductor.secret-key
