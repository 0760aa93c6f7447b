# callgw: `make run` starts the gateway on its embedded default; `make test` installs what the
# tests need and runs them. Both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?=
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG),)
# command:debian-package pairs the test suite uses
TEST_SYSTEM_DEPS := sipp:sip-tester tshark:tshark sox:sox baresip:baresip-core osmo-mgw:osmo-mgw chromium:chromium pg_ctl:postgresql psql:postgresql-client rtpengine:rtpengine-daemon systemd-analyze:systemd

.PHONY: run test install venv bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

venv: $(BIN)/python

# A regular (not editable) install: twistd finds the plugin only as twisted/plugins/.
install: venv
	rm -rf build
	$(BIN)/python -m pip install -q ".[test]"

run: install
	$(BIN)/callgw $(CONFIG_ARG) init
	$(BIN)/twistd -n callgw $(CONFIG_ARG)

test: install
	bash scripts/install-system-deps $(TEST_SYSTEM_DEPS)
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/sip_parse.py

clean:
	rm -rf build *.egg-info $(VENV)
