# The two commands: `make demo` and `make test`. Both set up .venv first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup onnx-env browser demo test lint pytest bench clean

setup:
	@bash scripts/setup_env.sh

# cardd for .onnx models without PyTorch (.venv-onnx): infer, serve, assess.
onnx-env:
	@bash scripts/setup_onnx_env.sh

# The web-page test drives a real browser (Debian's chromium).
browser:
	@bash scripts/install_browser.sh

demo: setup
	$(BIN)/cardd demo

lint: setup
	$(BIN)/ruff check cardd tests scripts

pytest: setup browser
	$(BIN)/pytest

test: setup browser lint pytest

bench: setup
	$(BIN)/python scripts/bench_infer.py

clean:
	rm -rf $(VENV) .venv-onnx .pytest_cache .ruff_cache
