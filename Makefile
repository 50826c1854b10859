# PineLab: one entry point. `make run` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint fmt typecheck migrate revision bench clean

# The first run installs PineLab's dependencies (what it imports, pinned by constraints.txt) and
# shows pip's progress; later runs skip this until pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml constraints.txt
	@echo "Installing PineLab and its dependencies into $(VENV) (the first time takes a minute)"
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	touch $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/pinelab migrate
	$(BIN)/pinelab serve

PYTEST_WORKERS ?= auto

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

fmt: $(TEST_STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

migrate: $(STAMP)
	$(BIN)/pinelab migrate

revision: $(STAMP)
	$(BIN)/pinelab revision -m "$(m)"

bench: $(TEST_STAMP)
	@command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install -y wrk"; exit 1; }
	$(BIN)/python bench/all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
