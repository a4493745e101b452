# Two entry points for a new user: `make run` and `make test`.
# Both build the virtual environment in .venv when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.seqjax-installed

.PHONY: run test lint bench experiments docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python experiments/quickstart.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python experiments/bench_cells.py
	$(BIN)/python experiments/bench_remat.py
	$(BIN)/python experiments/bench_seeds.py
	$(BIN)/python experiments/bench_seeds.py --fast
	$(BIN)/python experiments/bench_seeds.py --devices 2
	$(BIN)/python experiments/bench_seeds.py --devices 2 --fast
	$(BIN)/python experiments/profile_step.py

experiments: $(STAMP)
	$(BIN)/python -m experiments.claims.run_all

docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict -f docs/mkdocs.yml

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
