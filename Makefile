# Two commands on a fresh machine:  `make run` (install + start a vault)  and  `make test` (install + every check).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# `make run` needs only what running needs: its own stamp, no dev tools.
RUN_STAMP := $(VENV)/.run-installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test lint unit e2e js-deps go-deps java-deps sdk-deps pg-deps softhsm-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*; touch $@

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e .
	rm -f $(VENV)/.run-installed-*; touch $@

run: $(RUN_STAMP)
	$(BIN)/kluis serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint sdk-deps pg-deps softhsm-deps
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

e2e: $(STAMP) sdk-deps pg-deps softhsm-deps
	$(BIN)/pytest -q -m slow

# The SDK journeys' dependencies, pinned in tests/{js,go,java} and downloaded into the clone (gitignored).
sdk-deps: js-deps go-deps java-deps

js-deps:
	@if command -v npm >/dev/null 2>&1; then cd tests/js && npm ci --silent --no-audit --no-fund; \
	 else echo "npm not found: the JavaScript SDK journey will be skipped"; fi

GO_CACHE := $(CURDIR)/tests/go/.cache
GO_ENV   := GOPATH=$(GO_CACHE)/gopath GOMODCACHE=$(GO_CACHE)/mod GOCACHE=$(GO_CACHE)/build GOTOOLCHAIN=local \
            GOFLAGS="-mod=readonly -modcacherw"
go-deps:
	@if command -v go >/dev/null 2>&1; then cd tests/go && $(GO_ENV) go mod download && $(GO_ENV) go mod verify >/dev/null; \
	 else echo "go not found: the Go SDK journey will be skipped (under CI=true it fails)"; fi

# PostgreSQL for the multi-node tests: Debian's package, installed only under CI=true (as root) when
# initdb/pg_ctl are missing. The tests start their own server (tests/pgserver.py); without one they skip.
pg-deps:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	 elif [ "$$CI" = "true" ]; then \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	 else echo "PostgreSQL not found: its tests will be skipped (apt-get install postgresql; CI installs it)"; fi

# SoftHSM2 for the PKCS#11 key-encryption-key tests: Debian's package, installed only under CI=true (as
# root) when softhsm2-util is missing. The tests make their own token in a temporary SOFTHSM2_CONF;
# without SoftHSM2 they skip (under CI=true they fail).
softhsm-deps:
	@if command -v softhsm2-util >/dev/null 2>&1; then :; \
	 elif [ "$$CI" = "true" ]; then \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null; \
	 else echo "SoftHSM2 not found: the PKCS#11 KEK tests will be skipped (apt-get install softhsm2; CI installs it)"; fi

MVN_REPO := $(CURDIR)/tests/java/.m2
java-deps:
	@if command -v mvn >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then \
	   cd tests/java && mvn -B -q -Dmaven.repo.local=$(MVN_REPO) compile dependency:build-classpath; \
	 else echo "java or mvn not found: the Java SDK journey will be skipped (under CI=true it fails)"; fi

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache tests/js/node_modules \
	  tests/go/.cache tests/java/.m2 tests/java/target
