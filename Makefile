PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test test-all lint quickstart bench mutation clean

$(BIN)/nas: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# x86_64: the torch/torchvision releases this project is tested with (other machines resolve
	# the ranges in pyproject.toml).
	if [ "$$(uname -m)" = x86_64 ]; then $(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"; fi
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/nas

install: $(BIN)/nas

test: install  ## the default (fast) suite
	$(BIN)/python -m pytest -q

test-all: install  ## fast + slow/real-data tests
	$(BIN)/python -m pytest -q -m ""

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

quickstart: install  ## the main job: a real search on the bundled digits data
	$(BIN)/nas search studies/quickstart.toml

bench: install
	$(BIN)/python benchmarks/blocks.py

mutation: install  ## mutation score of the engine's logic (resumable; hours on 2 cores, nas/confirm alone about 1.5 h)
	$(BIN)/python benchmarks/mutation.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mutation *.egg-info
