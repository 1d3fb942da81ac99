# onionpost: `make test` installs what it needs (system packages, venv) and runs everything.
# On a bare Debian, `./run TARGET` first installs make and python3-venv (README, first lines).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install system-deps test test-unit lint run bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash tests/support/system-deps.sh

# ruff, then mypy ([tool.mypy] in pyproject.toml: strict on services/onionpost, lighter on
# tests and bench). `make test` runs it first, so a type error fails the tests (and CI).
lint: install
	$(VENV)/bin/ruff check services tests bench
	$(VENV)/bin/mypy

test: system-deps install lint
	$(PY) -m pytest $(PYTEST_ARGS) tests

test-unit: install
	$(PY) -m pytest -q tests/unit

# Ingest on 127.0.0.1:2525 with local defaults (no tor): mail for anything@local.onion.
run: install
	ONIONPOST_DOMAIN=$${ONIONPOST_DOMAIN:-local.onion} \
	ONIONPOST_MAILDIR=$${ONIONPOST_MAILDIR:-./mail/inbox} \
	$(VENV)/bin/onionpost ingest

bench: system-deps install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache mail

# The stack in containers (README, "Deploy on a VPS"): compose.yaml, configured by .env.
COMPOSE ?= docker compose
.PHONY: up up-offline down address status secrets owner-add owner-list owner-remove
# Installs Docker and Compose v2 when missing, then `docker compose up -d --build --wait`.
up: install
	@$(PY) -m onionpost.stack up
# Test support, for a sandbox without an image registry: stand-in base images, ntfy double.
up-offline: install
	$(PY) -m tests.compose.up
down:
	$(COMPOSE) down
address:
	@$(COMPOSE) run --rm --no-deps cli address --all
# The generated passwords: rq-dashboard's login and Redis's.
secrets:
	@$(COMPOSE) run --rm --no-deps cli secrets
status:
	$(COMPOSE) ps
	@$(COMPOSE) run --rm --no-deps cli status

# The owner onion (docs/owner.md): `make owner-add NAME=laptop SSH_KEY="ssh-ed25519 AAAA..."`
# prints, once, what the device needs. As tor's uid: tor accepts only its own files there.
# No Redis for these: the secrets volume is not for tor's uid.
OWNER := $(COMPOSE) run --rm --no-deps -T --user 10002:10002 -e ONIONPOST_SECRETS_DIR= cli owner
owner-add:
	@test -n "$(NAME)" || { echo 'make owner-add NAME=laptop [SSH_KEY="ssh-ed25519 AAAA..."]' >&2; exit 64; }
	@$(OWNER) add '$(NAME)' $(if $(SSH_KEY),--ssh-key '$(SSH_KEY)')
owner-list:
	@$(OWNER) list
owner-remove:
	@test -n "$(NAME)" || { echo 'make owner-remove NAME=laptop' >&2; exit 64; }
	@$(OWNER) remove '$(NAME)'
