# The README's two commands: `make run` and `make test`. Everything else is set-up they share.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# e.g. make package PYI_FLAGS="--distpath /tmp/dist --workpath /tmp/build" (needs ~5 GB)
PYI_FLAGS ?=

.PHONY: install run test lint bench package clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/deepfake-studio

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench

package: install
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[package]"
	$(BIN)/pyinstaller --noconfirm $(PYI_FLAGS) build.spec

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
