# Two commands on a fresh machine: `make play` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# A flat layout needs compat mode for twistd to see the plugin in an
# editable install (Twisted's plugin scan cannot see through setuptools'
# import hook); tests/test_packaging.py checks a plain `pip install .` too.
LOG = $(VENV)/install.log
# setuptools warns that compat mode is transitional: keep that in the log.
INSTALL = $(BIN)/python -m pip install -q -e
EDITABLE = --config-settings editable_mode=compat >>$(LOG) 2>&1 || { cat $(LOG); exit 1; }
STAMP = $(VENV)/.installed-test

# Playing needs only the package; testing adds pytest, selenium, ruff...
$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing realm into $(VENV) (details in $(LOG))"
	@$(BIN)/python -m pip install -q --upgrade pip setuptools >$(LOG) 2>&1 || { cat $(LOG); exit 1; }
	@$(INSTALL) . $(EDITABLE)
	@touch $@

$(STAMP): $(VENV)/.installed
	@echo "Installing the test tools into $(VENV) (details in $(LOG))"
	@$(INSTALL) '.[test]' $(EDITABLE)
	@touch $@

play: $(VENV)/.installed
	@$(BIN)/realm-play

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check realm tests twisted bench

browser: $(STAMP)
	$(BIN)/pytest -q tests/test_browser.py

typecheck: $(STAMP)
	$(BIN)/mypy realm

bench: $(STAMP)
	$(BIN)/python bench/run.py

# A self-signed certificate for --listen ssl:... (see README): server.pem
# holds key and certificate; trust/realm.pem the certificate alone, for
# clients' trustRoots=trust.
cert: server.pem trust/realm.pem
server.pem:
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
		-keyout server.pem -out server.pem
trust/realm.pem: server.pem
	mkdir -p trust && openssl x509 -in server.pem -out trust/realm.pem

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache
