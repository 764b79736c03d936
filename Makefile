# Two commands set up everything on a fresh machine: `make run` and `make test`.
# uv installs the locked dependencies (uv.lock) into .venv; it is installed
# with pip when the machine does not have it yet (see $(VENV)/.installed).

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
UV := $(shell command -v uv 2>/dev/null)
HOST ?= 127.0.0.1
PORT ?= 5000
SOURCES := app.py billing shop portal common commands templates

.PHONY: run test check lint install migrate demo browser system-packages translations extract-messages clean

# Outside development Forfait needs its public address (the links it mails
# are built from it, and other hosts are refused): here, where it serves.
run migrate demo: export FORFAIT_SERVER_NAME ?= $(HOST):$(PORT)
# The demo's client pays by transfer: an example IBAN (the French banks'
# documentation one) gives its order mail, PDF and QR code something to show.
run migrate demo: export FORFAIT_PROVIDER_IBAN ?= FR7630006000011234567890189

run: install system-packages migrate demo
	$(FLASK) run --host $(HOST) --port $(PORT)

# The suite runs in parallel (pytest-xdist), one database and one live server
# per worker. Three workers on two cores: browser tests spend much of their
# time waiting for Chromium and the server; idle workers take tests queued
# for busy ones (worksteal), so one slow file does not make the tail. Each
# worker, and each command a test starts, imports the app: they share its
# compiled bytecode even where the environment says not to write it
# (PYTHONDONTWRITEBYTECODE; the dependencies' is compiled by
# `uv sync --compile-bytecode`).
TEST_WORKERS ?= 3

test: install browser system-packages
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# The quick loop while working: everything but the browser and PostgreSQL
# tests (CI runs those too, through `make test`).
check: install system-packages
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n auto --dist worksteal -m "not browser and not postgres"

# Style and types: ruff (Flask's rule set) and mypy (strict on billing/),
# both configured in pyproject.toml. Both run, so one run shows every
# finding; either failing fails the target. CI runs it before the suite.
lint: $(VENV)/.installed
	@status=0; \
	echo "$(BIN)/ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "$(BIN)/mypy"; $(BIN)/mypy || status=1; \
	exit $$status

install: $(VENV)/.installed translations

# Without uv, pip installs it: plainly (a virtualenv, pyenv), else for the
# user, else past Debian's externally-managed guard (PEP 668), still for the
# user only. ~/.local/bin is often not on PATH, so uv is then run by its path.
$(VENV)/.installed: pyproject.toml uv.lock
	@uv="$(UV)"; \
	if [ -z "$$uv" ]; then \
		echo "installing uv with pip"; \
		python3 -m pip install --quiet uv 2>/dev/null \
		|| python3 -m pip install --quiet --user uv 2>/dev/null \
		|| python3 -m pip install --quiet --user --break-system-packages uv \
		|| exit 1; \
		uv=$$(command -v uv || echo "$$(python3 -m site --user-base)/bin/uv"); \
	fi; \
	echo "$$uv sync --frozen --compile-bytecode"; \
	"$$uv" sync --frozen --compile-bytecode
	@touch $@

# Compiled catalogues are build output: made from the committed .po files.
translations: $(VENV)/.installed
	$(BIN)/pybabel compile --use-fuzzy -d translations -f 2>&1 | grep -v '^compiling' || true

extract-messages: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --sort-by-file -o translations/messages.pot $(SOURCES)
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching

migrate: install
	$(FLASK) db upgrade

demo: migrate
	$(FLASK) catalogue load demo itsupport --if-empty
	$(FLASK) demo users

# Browser tests drive Debian's Chromium; Playwright's own download is only
# the fallback where apt-get cannot run (no root).
browser:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	else \
		$(BIN)/playwright install chromium; \
	fi

# Debian packages Python cannot bring: Pango and HarfBuzz-Subset for
# WeasyPrint's PDFs (without the latter it warns, and the suite treats
# warnings as errors), DejaVu fonts for them, and for the tests zbarimg
# (QR codes read back) and pdftoppm/pdftotext (PDFs turned into images and
# text). Installed only when
# missing, and only as root.
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core zbar-tools poppler-utils

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then \
		true; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing Debian packages (install them as root): $$missing" >&2; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache
