# The two commands: `make run` (set up + serve the demo world) and `make test` (set up + tests).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist processes per suite; worksteal evens out the few long real-server tests. The
# PostgreSQL pass runs only the tests that use a database (tests/conftest.py).
WORKERS ?= 2

.PHONY: run test setup lint migration-initial bench fuzz audit screenshots clean

# setup.py builds the native library (access/native) at install time; rebuilt when it changes.
$(STAMP): pyproject.toml demo/pyproject.toml setup.py $(wildcard access/native/*.c)
	@test -n "$(PY)" || { echo "need python3.11 on PATH"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# the demo world is its own distribution (demo/), installed beside the runtime package
	$(BIN)/pip install --quiet -e ".[dev]" -e ./demo
	@# pycanon (the independent check of access/risk.py's figures in the tests) pins exact old
	@# numpy/pandas releases it does not need; it only uses their stable API, so no deps.
	$(BIN)/pip install --quiet --no-deps pycanon==1.3.6
	@touch $(STAMP)

setup: $(STAMP)

# The server and one `govshare worker` beside it (deliveries, quality runs, schedules); Ctrl-C
# stops both.
# Development mode, said explicitly: production (the default) refuses to start without a
# configured master secret (docs/security.md, "Keys").
run: export GOVSHARE_MODE ?= development
run: $(STAMP)
	$(BIN)/govshare demo --if-empty
	$(BIN)/govshare serve --with-worker

# SQLite: the whole suite, including the browser story, crash tests and a short fuzz run.
# PostgreSQL (a throwaway server on loopback): the same suite but the browser tests.
# The dependency audit runs first (docs/security.md).
# The native library must be there (built by the install above; tests/test_native.py).
test: export GOVSHARE_REQUIRE_NATIVE = 1
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# known vulnerabilities fail the run; "could not check" (exit 2, e.g. offline) is reported
	.ci/audit || [ $$? -eq 2 ]
	.ci/ensure-chromium
	.ci/ensure-go
	$(BIN)/pytest -n $(WORKERS) --dist worksteal
	.ci/with-postgres $(BIN)/pytest -q -p no:cacheprovider -n $(WORKERS) --dist worksteal -m "not browser"

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

# The long API fuzz (docs/security.md); a short run is part of the tests (tests/test_fuzz.py).
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz --max-examples 50 --max-time 300

# Known vulnerabilities in the installed packages (needs PyPI's JSON API; exit 2 = could not check).
audit: $(STAMP)
	.ci/audit

# A PNG of every main page of the demo world, for reviewers (docs/web.md).
screenshots: export GOVSHARE_MODE ?= development
screenshots: $(STAMP)
	.ci/ensure-chromium
	$(BIN)/govshare screenshots screenshots

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) govshare-data
