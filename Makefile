# Chaperone: every target brings what it needs (Node 24, Debian packages, the Go-built servers),
# so `make demo` and `make test` work on a fresh machine. Heavy builds are cached in $(CACHE).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CACHE ?= $(HOME)/.cache/chaperone
export CHAPERONE_CACHE := $(CACHE)
NODE_BIN := $(shell CHAPERONE_CACHE=$(CACHE) scripts/setup-node.sh)
export PATH := $(NODE_BIN):$(CURDIR)/node_modules/.bin:$(PATH)

# Every folder that holds tests; node's runner reads *.test.ts with native type stripping.
TEST_FILES := '{recording,sidecar,webhook,operator,cli,crds,charts,test}/**/*.test.ts'
NODE_TEST := node --test --test-reporter=spec --test-timeout=600000

.PHONY: all setup system deps tools check typecheck lint format test demo bench crds clean-cache

all: check

setup: system deps tools

system:
	@scripts/setup-system.sh

deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	@# npm ci refuses this lock: the registry here lacks the non-Linux optional builds of biome,
	@# so the lock cannot list them; npm install skips them as optional and keeps the lock.
	npm install --no-audit --no-fund
	@touch $@

tools: system deps
	@test/env/tools/build-go-tools.sh
	@test/env/tools/fetch-kube-clis.sh

typecheck: deps
	tsc -p tsconfig.json

lint: deps
	biome check .

format: deps
	biome check --write .

check: typecheck lint

# The whole suite against real servers (kube-apiserver, etcd, MinIO, PostgreSQL, sshd, OIDC).
test: setup check
	$(NODE_TEST) --test-global-setup=test/env/global-setup.ts $(TEST_FILES)

# Flake detector: the suite (or FLAKE_FILES) FLAKE_RUNS times under CPU pressure (a busy loop on
# one core); reports every test that did not pass every time, with test count and duration per run.
.PHONY: flake
FLAKE_RUNS ?= 3
FLAKE_FILES ?= $(TEST_FILES)
flake: setup check
	FLAKE_RUNS='$(FLAKE_RUNS)' FLAKE_FILES="$(FLAKE_FILES)" node test/flake/run.ts

demo: setup
	node test/e2e/demo.ts

bench: setup
	node bench/run.ts

crds: deps
	node crds/generate.ts

clean-cache:
	rm -rf $(CACHE)
