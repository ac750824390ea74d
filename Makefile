# The two commands: `make run` (set up + serve the demo world) and `make test` (set up + tests).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lint migration-initial bench clean

$(STAMP): pyproject.toml
	@test -n "$(PY)" || { echo "need python3.11 on PATH"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/govshare demo --if-empty
	$(BIN)/govshare serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Before the first release the initial revision is regenerated from the models.
migration-initial: $(STAMP)
	rm -f govshare/migrations/versions/0001_*.py
	tmp=$$(mktemp -d) && GOVSHARE_DATA_DIR=$$tmp $(BIN)/python -c \
	  "from govshare.migrate import autogenerate; autogenerate('initial schema', rev_id='0001')" \
	  && rm -rf $$tmp
	$(BIN)/ruff check --fix --quiet govshare/migrations/versions || true
	$(BIN)/ruff format --quiet govshare/migrations/versions

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) govshare-data
