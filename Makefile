# Chaperone: every target brings what it needs (Node 24, Debian packages, the Go-built servers),
# so `make demo` and `make test` work on a fresh machine. Heavy builds are cached in $(CACHE).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CACHE ?= $(HOME)/.cache/chaperone
export CHAPERONE_CACHE := $(CACHE)
NODE_BIN := $(shell CHAPERONE_CACHE=$(CACHE) scripts/setup-node.sh)
export PATH := $(NODE_BIN):$(CURDIR)/node_modules/.bin:$(PATH)

# Every folder that holds tests; node's runner reads *.test.ts with native type stripping.
TEST_FILES := '{recording,sidecar,webhook,operator,cli,kubectl-plugin,release,crds,charts,images,test}/**/*.test.ts'
NODE_TEST := node --test --test-reporter=spec --test-timeout=600000

.PHONY: all setup system deps tools check typecheck lint format test demo bench crds chart release clean-cache
.PHONY: node-system node-tools node-test node-clean images

all: check

setup: system deps tools

system:
	@scripts/setup-system.sh

deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	@# npm ci refuses this lock: the registry here lacks the non-Linux optional builds of biome,
	@# so the lock cannot list them; npm install skips them as optional and keeps the lock.
	npm install --no-audit --no-fund
	scripts/build-ssh2-binding.sh $(NODE_BIN)/..
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

# The whole suite against real servers (kube-apiserver, etcd, MinIO, PostgreSQL, sshd, OIDC) and
# the real node (kubelet, containerd, kube-proxy, CoreDNS, kube-router, a registry: test/env/node.ts)
# running Chaperone's images. The node changes the host (iptables, cgroups, sysctls), all undone on
# stop. TEST_ENV_PARTS=kube,minio,postgres,sshd,oidc runs the suite without it (test/node/* skip).
TEST_ENV_PARTS ?= kube,node,minio,postgres,sshd,oidc
test: setup check $(if $(findstring node,$(TEST_ENV_PARTS)),node-tools images)
	CHAPERONE_TEST_ENV_PARTS='$(TEST_ENV_PARTS)' $(NODE_TEST) --test-global-setup=test/env/global-setup.ts $(TEST_FILES)
	$(if $(findstring node,$(TEST_ENV_PARTS)),$(EXCLUSIVE_TEST))

# Second pass: the tests that install Chaperone cluster-wide (the chart's life on the node, the demo)
# run alone on a fresh cluster (test/testing/exclusive.ts says why).
EXCLUSIVE_TEST = CHAPERONE_TEST_CLUSTER_EXCLUSIVE=1 CHAPERONE_TEST_ENV_PARTS=kube,node,minio,postgres $(NODE_TEST) --test-global-setup=test/env/global-setup.ts 'test/chart/**/*.test.ts' test/e2e/demo.test.ts

# Flake detector: the suite (or FLAKE_FILES) FLAKE_RUNS times under CPU pressure (a busy loop on
# one core); reports every test that did not pass every time, with test count and duration per run.
.PHONY: flake
FLAKE_RUNS ?= 3
FLAKE_FILES ?= $(TEST_FILES)
flake: setup check
	FLAKE_RUNS='$(FLAKE_RUNS)' FLAKE_FILES="$(FLAKE_FILES)" node test/flake/run.ts

# The demo runs on the real node (kubelet, containerd, registry: node-tools) and installs the chart
# with helm; it builds Chaperone's images itself when they are missing or stale.
demo: setup node-tools
	node test/e2e/demo.ts

bench: setup
	node bench/run.ts

crds: deps
	node crds/generate.ts
	node charts/schema/generate.ts

# values.schema.json, the chart's CRD copies and the values reference in docs/install.md.
chart: deps
	node charts/schema/generate.ts

# npm package, linux-x64/arm64 single executables, krew archives and SHA256SUMS into dist/.
release: deps
	scripts/release.sh

clean-cache:
	rm -rf $(CACHE)

# --- The real node (test/env/node.ts): kubelet, containerd, kube-proxy, CoreDNS, a registry. ---
# `make test` starts it too; `make node-test` runs only the node's tests (and the host-cleanup check).
node-system:
	@scripts/setup-system-node.sh

node-tools: tools node-system
	@nice -n 10 test/env/tools/build-go-tools.sh node registry coredns kube-router
	@test/env/tools/build-node-images.sh >/dev/null

# The injected-Job tests run the images this checkout builds (they skip, saying so, without them).
node-test: node-tools images check
	CHAPERONE_TEST_ENV_PARTS=kube,node,minio,postgres $(NODE_TEST) --test-global-setup=test/env/global-setup.ts 'test/node/**/*.test.ts'
	$(EXCLUSIVE_TEST)
	@# Starts and stops a node itself, then checks the host is as before: no shared node around it.
	CHAPERONE_TEST_ENV_PARTS=kube,node $(NODE_TEST) test/env/node.test.ts

# After a crash: undo what a node left on the host (its directory is named in /run/chaperone-node.lock).
node-clean:
	@if [[ -f /run/chaperone-node.lock ]]; then test/env/tools/node-host-cleanup.sh "$$(sed -n 2p /run/chaperone-node.lock)" /run/chaperone-node.sysctls && rm -f /run/chaperone-node.lock /run/chaperone-node.sysctls; fi

# Chaperone's images (images/build.ts): OCI layout in $(CACHE)/images/chaperone; pushed when
# REGISTRY=host:port is given (the test node's registry is pushed to when the node starts).
images: deps node-system
	node images/build.ts $(if $(REGISTRY),--push $(REGISTRY))
