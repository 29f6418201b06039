# One command per job. Everything runs from a local virtualenv (.venv) that `make` creates.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# tiktoken cannot download encodings offline; the official files live in ../shared/tiktoken.
export TIKTOKEN_CACHE_DIR ?= $(abspath ../shared/tiktoken)
# PostgreSQL tests use this database server; unset it to skip them (they say so).
export FINOPS_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: install demo run test lint check bench clean

$(BIN)/finops: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/finops           ## create .venv and install finops with its dev tools

demo: install                    ## two months of sample usage, outcomes and today's incidents in ./finops.db
	$(BIN)/finops demo

run: install                     ## the daemon on 127.0.0.1:8787 with ./finops.db and ./budgets (Ctrl-C stops it)
	$(BIN)/finops run --init --log-format text

test: install                    ## the test suite (SQLite always; PostgreSQL when reachable), two workers
	$(BIN)/pytest -n 2

lint: install                    ## ruff, mypy --strict and the layer contracts (lint-imports)
	$(BIN)/ruff check finops tests bench alembic
	$(BIN)/ruff format --check finops tests bench alembic
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test                 ## everything CI runs

bench: install                   ## bench/ figures (pricing needs `pip install litellm`; PostgreSQL ones FINOPS_BENCH_POSTGRES_URL)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/check.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/http_ingest.py
	$(BIN)/python bench/admission.py
	$(BIN)/python bench/admission_overrun.py
	LITELLM_LOCAL_MODEL_COST_MAP=True $(BIN)/python bench/pricing.py
	@# PostgreSQL at scale (issue 15): only against a server named for benchmarks, never the test one
	@if [ -n "$$FINOPS_BENCH_POSTGRES_URL" ]; then \
		$(BIN)/python bench/pg_ingest.py && $(BIN)/python bench/held_history.py && \
		$(BIN)/python bench/pg_scale.py --db finops_bench_scale --replace; \
	else echo "bench/pg_ingest.py, bench/held_history.py, bench/pg_scale.py: skipped (set FINOPS_BENCH_POSTGRES_URL)"; fi

clean:
	rm -rf $(VENV) .venv-focus .pytest_cache .mypy_cache .ruff_cache bench/data finops.db*
