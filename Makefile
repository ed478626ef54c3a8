# The one task runner. `make run` and `make test` are the whole quick start.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run sweep test lint audit-dependencies format bench bench-care clean install messages

# Reinstall only when the project's dependencies change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Compiled translations of patient-facing text (the .po files are the source).
MO_FILES := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))
translations/%.mo: translations/%.po | $(VENV)/.installed-dev
	$(BIN)/pybabel compile -i $< -o $@

install: $(VENV)/.installed-dev $(MO_FILES)

# axe-core for the accessibility checks of the browser tests (npm registry).
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

# Links (`proms link`, the "Create a link" button) point at this server: PROMS_PUBLIC_BASE_URL
# follows HOST and PORT unless it is set. In another shell, export it to get the same links.
# The scheduler runs beside the web app and writes each message it sends to instance/outbox/
# (development's message transport); Ctrl-C stops both.
DEV_ENV = export PROMS_ENV=$${PROMS_ENV:-development}; \
	export PROMS_PUBLIC_BASE_URL=$${PROMS_PUBLIC_BASE_URL:-http://$(HOST):$(PORT)};

run: install
	@$(DEV_ENV) \
	$(BIN)/proms db upgrade && \
	$(BIN)/proms demo && \
	echo "proms is on http://$(HOST):$(PORT)/  (Ctrl-C stops it)" && \
	{ $(BIN)/proms scheduler & scheduler=$$!; \
	  trap 'kill -TERM $$scheduler 2>/dev/null; wait $$scheduler' EXIT INT TERM; \
	  $(BIN)/flask --app proms run --host $(HOST) --port $(PORT); }

# Every sweep of the scheduler once, at a moment of your choice, as `make run` would run it:
# `make sweep NOW=2027-01-05T15:00:00Z` (UTC unless it has an offset). A second run at the same
# moment sends nothing more.
sweep: install
	@$(DEV_ENV) $(BIN)/proms scheduler --once $(if $(NOW),--now $(NOW))

# SQLite always; PostgreSQL too when PROMS_TEST_POSTGRES_URL names a database. The two passes
# run side by side (each is one process; a machine has at least two cores): the SQLite pass
# prints as it goes, the PostgreSQL pass's report follows it. The wheel test
# (tests/test_wheel.py: build, install in a fresh venv, serve) runs once, in the SQLite pass: it
# uses a SQLite file of its own whatever --database says. The PostgreSQL pass runs only the
# tests that depend on the database (--database-dependent-only: those using a fixture built on
# `database_kind`, tests/conftest.py); the others, the same on either, run in the SQLite pass.
test: install node_modules/.package-lock.json
	@if [ -z "$$PROMS_TEST_POSTGRES_URL" ]; then \
		$(BIN)/pytest $(PYTEST_ARGS); status=$$?; \
		echo "PROMS_TEST_POSTGRES_URL is not set: the PostgreSQL run was skipped."; \
		exit $$status; \
	fi; \
	out=$$(mktemp -d); \
	$(BIN)/pytest --database=postgresql --database-dependent-only -m "not wheel" $(PYTEST_ARGS) \
		> $$out/log 2>&1 & pg=$$!; \
	trap 'kill $$pg 2>/dev/null; rm -rf $$out' EXIT; \
	echo "== SQLite pass (the PostgreSQL pass runs beside it; its report follows)"; \
	$(BIN)/pytest $(PYTEST_ARGS); sqlite=$$?; \
	wait $$pg; postgresql=$$?; \
	echo "== PostgreSQL pass"; cat $$out/log; \
	echo "== SQLite pass exit $$sqlite, PostgreSQL pass exit $$postgresql"; \
	[ $$sqlite -eq 0 ] && [ $$postgresql -eq 0 ]

# bandit: no medium or high finding (config and accepted skips in pyproject.toml). pip-audit:
# every installed dependency (proms itself, installed editable, aside) checked against PyPI's
# advisories; --strict fails when one cannot be checked (no network, PyPI unreachable), so an
# audit that did not happen is never a pass (docs/security.md).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r proms bench --severity-level medium
	@$(MAKE) --no-print-directory audit-dependencies

# pip-audit of what `make install` installed, against PyPI's advisories. A known vulnerability
# fails. An audit that could not run (no route to the advisory service, as on machines that
# reach PyPI only through a package mirror) is printed as NOT AUDITED, never as a pass, and
# fails only where PROMS_REQUIRE_AUDIT=1 says an unaudited build must not go on.
audit-dependencies: install
	@out=$$($(BIN)/pip-audit --strict --skip-editable --progress-spinner off 2>&1); status=$$?; \
	printf '%s\n' "$$out"; \
	if [ $$status -eq 0 ]; then echo "pip-audit: no known vulnerability in the installed dependencies"; \
	elif printf '%s' "$$out" | grep -q "known vulnerabilit"; then \
		echo "pip-audit: FAILED, a dependency has a known vulnerability (above)"; exit 1; \
	else echo "pip-audit: NOT AUDITED, the advisory service could not be reached (above);" \
		"this is not a pass. Set PROMS_REQUIRE_AUDIT=1 to fail the build on it."; \
		[ "$$PROMS_REQUIRE_AUDIT" != 1 ] || exit 1; fi

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks print ratios against baselines measured in the same run (bench/README.md).
bench: install
	@for script in bench/*_bench.py; do $(BIN)/python $$script || exit 1; done

# The care team's pages on generated PostgreSQL data alone: `make bench-care SCALE=0.1` is CI's
# size (10,000 patients); 1.0 (the default) is 100,000. PROMS_BENCH_POSTGRES_URL names the server.
bench-care: install
	$(BIN)/python bench/care_bench.py --scale $(or $(SCALE),1.0)

# The soak (docs/soak.md): locust against gunicorn on PostgreSQL with the scheduler sending, two
# web hosts sharing PostgreSQL and Redis, SQLite's saturation point, then the faults
# (bench/soak/faults.py). Every gate is checked; any failure makes the target fail. `soak-ci` is
# the short version .ci/run runs. Needs PostgreSQL (PROMS_SOAK_POSTGRES_URL, default the local
# server as postgres) and Redis on 127.0.0.1:6379; SOAK_ARGS passes options to bench/soak/run.py.
.PHONY: soak soak-ci
$(VENV)/.installed-soak: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,soak]'
	touch $@

SOAK = status=0; \
	$(BIN)/python bench/soak/run.py $(1) $(SOAK_ARGS) || status=$$?; \
	if [ -f bench/soak/faults.py ]; then $(BIN)/python bench/soak/faults.py $(1) || status=$$?; fi; \
	exit $$status

soak: install $(VENV)/.installed-soak
	@$(call SOAK,)

# The short version runs the faults beside the load: they use PostgreSQL clusters and a SQLite
# file of their own and spend most of their time waiting for an outage to pass, so CI pays for
# the longer of the two, not both. Its figures are gates, not measurements.
soak-ci: install $(VENV)/.installed-soak
	@$(BIN)/python bench/soak/faults.py --short > $(VENV)/soak-faults.log 2>&1 & faults=$$!; \
	status=0; $(BIN)/python bench/soak/run.py --short $(SOAK_ARGS) || status=$$?; \
	wait $$faults || status=$$?; echo "== faults (bench/soak/faults.py --short)"; \
	cat $(VENV)/soak-faults.log; exit $$status

# After changing patient-facing text: re-extract the catalog and update every language (then
# translate the new entries in translations/*/LC_MESSAGES/messages.po).
messages: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_ngettext:1,2 \
		--add-comments=TRANSLATORS: --ignore-dirs=".* __pycache__ node_modules" --sort-output \
		--project proms --version 0.1.0 --copyright-holder "proms contributors" \
		-o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache node_modules artifacts
