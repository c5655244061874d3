# The project's single entry point. On a fresh machine:
#   make demo   set everything up, then run the demo on the virtual board
#   make test   set everything up, then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
STUBS   = typings/.installed
STUB_VERSION = 1.29.0.post1

.PHONY: setup demo test test-fast nut clean help

help:
	@echo "make demo  - set up and run the demo on the virtual board"
	@echo "make test  - set up and run the whole test suite"

$(STAMP): pyproject.toml setup.py
	@$(PYTHON) tools/check_platform.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel "Cython>=3.0.10" numpy
	$(BIN)/pip install -q --no-build-isolation -e '.[dev]'
	touch $(STAMP)

# Stubs for type-checking the firmware against each port's real API (one folder per port).
$(STUBS): $(STAMP)
	$(BIN)/pip install -q --target typings/esp32 micropython-esp32-stubs==$(STUB_VERSION)
	$(BIN)/pip install -q --target typings/rp2 micropython-rp2-stubs==$(STUB_VERSION)
	touch $(STUBS)

setup: $(STAMP) $(STUBS)

# Debian packages the tests use: NUT's real upsd/upsmon/upsc/nutdrv_qx to compare against, tmux
# to drive `monitor` in a real terminal, the NUT clients of test_nut_clients.py (check_ups,
# collectd's nut plugin; node-nut from npm, pinned, into build/npm), the receivers of the
# sentinel's alerts (rsyslog, Mosquitto), the Prometheus server that scrapes /metrics, headless
# Chromium for the status page, and NSS's certutil for upsmon over TLS. The tests start their
# own instances of these servers on loopback ports; none is used as a system service.
SYSTEM_PKGS = nut-client nut-server tmux monitoring-plugins-basic collectd-core \
	rsyslog mosquitto mosquitto-clients prometheus chromium fonts-dejavu-core libnss3-tools
NODE_NUT = build/npm/node_modules/node-nut/package.json
nut: $(NODE_NUT)
	@missing=$$(for p in $(SYSTEM_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages: run 'sudo apt-get install" $$missing"'"; exit 1; fi; fi

$(NODE_NUT):
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	  else echo "missing npm: run 'sudo apt-get install nodejs npm'"; exit 1; fi; fi
	mkdir -p build/npm
	npm install -s --prefix build/npm --no-audit --no-fund node-nut@1.0.3

demo: setup
	$(BIN)/powersentinel demo

test: setup nut
	$(BIN)/python -m pytest -m "not nightly" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) typings build *.egg-info
