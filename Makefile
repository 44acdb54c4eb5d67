# Set-up is part of every target: the first run creates .venv and installs the pinned
# set (pyproject.toml + requirements.lock); later runs skip that step.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# DEMO_OUT: where the demo writes (unset: the main job's own folder, PipelineConfig.out)
DEMO_OUT ?=
PYTEST_ARGS ?=

.PHONY: demo demo-stop test test-fast install lock sysdeps

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The main job through Prefect (server on 127.0.0.1:4200 unless PREFECT_API_URL answers, pools, deployments,
# workers, distill -> train -> evaluate). KEEP=1 leaves the server and workers running for the UI.
demo: $(STAMP)
	$(VENV)/bin/ghnerf demo $(if $(DEMO_OUT),--out $(DEMO_OUT),) $(if $(KEEP),--keep,)

# Stop the server and workers a demo left running (only the processes it recorded in its stack.json).
demo-stop: $(STAMP)
	$(VENV)/bin/ghnerf demo-stop $(if $(DEMO_OUT),--out $(DEMO_OUT),)

# Debian packages the tests use: Chromium (the UI test) and PostgreSQL (Prefect on PostgreSQL). Installed with
# apt-get when missing and we are root; otherwise those tests skip and say why.
sysdeps:
	@if command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and postgresql (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql >/dev/null; \
	else echo "sysdeps: chromium / postgresql missing and not root: the UI and PostgreSQL tests will skip"; fi

test: $(STAMP) sysdeps
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable > requirements.lock
