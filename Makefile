# Quick start: `make demo` and `make test`. Each creates its own virtualenv (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo sandbox test lint typecheck unit plan-json bench clean

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The local failover drill: every layer fails over for real (see README "make demo").
# Needs PostgreSQL server binaries (installed with apt-get when missing and run as root).
# `make demo STACK=aws-dev`: the logic-layer fault on the plan-deployed sandbox instead (monitors
# invoked from their archives by their schedules, 1 simulated minute = SPM seconds).
SPM ?= 10
demo: $(STAMP)
ifneq ($(filter command line environment,$(origin STACK)),)
	$(BIN)/python -m components.sandbox.drill_deployed --stack $(STACK) --seconds-per-minute $(SPM)
else
	$(BIN)/python -m components.sandbox.drill --out .drill
endif

# The stack's plan deployed into a local moto server with IAM enforced; prints what was
# deployed and how the sandbox differs from AWS. `make sandbox STACK=aws-dev MINUTES=3`
# also runs the monitors on their schedules (1 simulated minute = 10 s).
STACK   ?= aws-dev
MINUTES ?= 0
sandbox: $(STAMP)
	$(BIN)/python -m components.sandbox --stack $(STACK) --minutes $(MINUTES) --seconds-per-minute 10

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/plan_scale.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/failover.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
