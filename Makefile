# The two commands: `make demo` and `make test`. Both set up .venv first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint pytest bench clean

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(BIN)/cardd demo

lint: setup
	$(BIN)/ruff check cardd tests scripts

pytest: setup
	$(BIN)/pytest

test: setup lint pytest

bench: setup
	$(BIN)/python scripts/bench_infer.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
