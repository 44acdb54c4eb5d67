# Set-up is part of every target: the first run creates .venv and installs the pinned
# set (pyproject.toml + requirements.lock); later runs skip that step.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
PYTEST_ARGS ?=

.PHONY: demo demo-stop test test-fast install lock

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The main job through Prefect (server on 127.0.0.1:4200 unless PREFECT_API_URL answers, pools, deployments,
# workers, distill -> train -> evaluate). KEEP=1 leaves the server and workers running for the UI.
demo: $(STAMP)
	$(VENV)/bin/ghnerf demo --out $(DEMO_OUT) $(if $(KEEP),--keep,)

# Stop the server and workers a demo left running (only the processes it recorded in $(DEMO_OUT)/stack.json).
demo-stop: $(STAMP)
	$(VENV)/bin/ghnerf demo-stop --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable > requirements.lock
