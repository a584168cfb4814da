# The two commands: `make demo` and `make test`. Both set up .venv first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup onnx-env browser demo test test-fast lint pytest docs bench clean

setup:
	@bash scripts/setup/setup_env.sh

# `pip install cardd` (editable) into .venv-onnx: .onnx models without PyTorch.
onnx-env:
	@bash scripts/setup/setup_onnx_env.sh

# The web-page test drives a real browser (Debian's chromium).
browser:
	@bash scripts/setup/install_browser.sh

demo: setup
	$(BIN)/cardd demo

lint: setup
	$(BIN)/ruff check cardd tests scripts docs/hooks.py

pytest: setup browser
	$(BIN)/pytest

test: setup browser lint pytest docs

# The inner loop (about 3 minutes on 2 cores): no training, no trained model, no
# browser, no cluster. docs/development/tests.md says what each tier covers.
test-fast: setup lint
	$(BIN)/pytest -m "not slow and not model and not browser and not cluster"

# The docs site into site/ (warnings are errors: a broken link or reference fails).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: setup
	$(BIN)/python scripts/bench/bench_infer.py

clean:
	rm -rf $(VENV) .venv-onnx .pytest_cache .ruff_cache site
