# Berth's two commands for a new user are `make run` and `make test`; the
# README says what each does. Everything runs as root: berthd makes
# namespaces, mounts and cgroups.

GO        ?= go
BIN       := $(CURDIR)/bin
BERTHD    := $(BIN)/berthd
# Berth's version (cri/version.go): the VERSION file for a release (a clean
# tree at tag v$(BASE_VERSION), or RELEASE=1), else
# $(BASE_VERSION)-dev+<commit>[.dirty]. Both are semantic versions, which
# kubelet needs.
BASE_VERSION := $(shell cat VERSION)
COMMIT    := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
DIRTY     := $(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo .dirty)
RELEASE   ?= $(if $(DIRTY),,$(shell git tag --points-at HEAD 2>/dev/null | grep -qx 'v$(BASE_VERSION)' && echo 1))
VERSION   := $(if $(RELEASE),$(BASE_VERSION),$(BASE_VERSION)-dev$(if $(COMMIT),+$(COMMIT)$(DIRTY)))
BERTHD_RACE := $(BIN)/berthd-race
LDFLAGS   := -X github.com/berth-runtime/berth/cri.Version=$(VERSION)
# Test packages run two at a time (the machine has 2 cores); the integration
# tests start their own berthds and wait on real processes, so give them time.
TEST_P       ?= 2
TEST_TIMEOUT ?= 60m
TEST_FLAGS   ?=
BENCH_ARGS   ?=
RUN_ARGS     ?=

.PHONY: all build run test unit integration lint bench deps build-race test-race test-deps clean e2e-build e2e-up e2e-down test-e2e

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BERTHD) ./cmd/berthd

# berthd with Go's race detector, for make test-race.
build-race:
	$(GO) build -race -trimpath -ldflags '$(LDFLAGS)' -o $(BERTHD_RACE) ./cmd/berthd

deps:
	@sh hack/deps.sh run

test-deps:
	@sh hack/deps.sh test
	$(GO) mod download

# make run: berthd in the foreground with its defaults (/etc/berth/config.toml
# if present, socket /run/berth/berth.sock), plus Berth's default pod network
# when /etc/cni/net.d holds none.
run: deps build
	$(BERTHD) --cni-default-network $(RUN_ARGS)

# The integration tests against bin/berthd-race. The first data race makes
# berthd print its report into its log and exit 66; the harness fails the
# test that ran it, and every test whose berthd logged a report.
RACE_TESTS = BERTHD=$(BERTHD_RACE) GORACE='halt_on_error=1 exitcode=66' \
	$(GO) test -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./test/integration/

# make test: every package's tests, unit and integration, against the berthd
# built here, then the integration tests again against berthd built with
# -race. Tests clean up what they make; hack/cleanup.sh then removes
# whatever a crashed test left (keeping failed tests' directories).
test: test-deps lint build build-race e2e-build
	@echo "running tests as $$(id -un) with BERTHD=$(BERTHD)"
	@BERTHD=$(BERTHD) E2E_BIN=$$(BERTH_E2E_CACHE=$(E2E_CACHE) sh hack/k8s/build.sh) $(GO) test -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...; \
	rc=$$?; echo "running the integration tests with BERTHD=$(BERTHD_RACE)"; \
	$(RACE_TESTS) || rc=1; \
	sh hack/cleanup.sh $$rc; exit $$rc

# make test-race: only the race half of make test.
test-race: test-deps build-race
	@$(RACE_TESTS); rc=$$?; sh hack/cleanup.sh $$rc; exit $$rc

unit: build
	BERTHD=$(BERTHD) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./cmd/... ./cri/... ./image/... ./cni/... ./oci/... ./sandbox/...

integration: test-deps build
	BERTHD=$(BERTHD) $(GO) test -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./test/...

# The end-to-end cluster (test/e2e): Kubernetes v1.36 components built from
# the Go module proxy by hack/k8s (cached in $(E2E_CACHE)/<version>-<hash>/,
# outside the tree, so a second run or a fresh clone reuses them), and
# make e2e-up / e2e-down to run the cluster by hand on $(E2E_DIR).
E2E_CACHE ?= /var/cache/berth-e2e
E2E_DIR   ?= /tmp/berth-e2e

e2e-build:
	@BERTH_E2E_CACHE=$(E2E_CACHE) sh hack/k8s/build.sh >/dev/null

$(BIN)/e2e: FORCE
	$(GO) build -o $@ ./hack/e2e

e2e-up: test-deps build e2e-build $(BIN)/e2e
	$(BIN)/e2e up -dir $(E2E_DIR) -berthd $(BERTHD) -bin $$(BERTH_E2E_CACHE=$(E2E_CACHE) sh hack/k8s/build.sh)

e2e-down: $(BIN)/e2e
	$(BIN)/e2e down -dir $(E2E_DIR)

test-e2e: test-deps build e2e-build
	BERTHD=$(BERTHD) E2E_BIN=$$(BERTH_E2E_CACHE=$(E2E_CACHE) sh hack/k8s/build.sh) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./test/e2e/...

FORCE:

lint:
	@out=$$(gofmt -l cmd cri sandbox oci image cni hack test); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# make bench: Berth against Debian's containerd, side by side (hack/bench);
# the README's results table is replaced with this run's.
bench: build
	sh hack/containerd/install.sh
	$(GO) run ./hack/bench -berthd $(BERTHD) -readme README.md $(BENCH_ARGS)

clean:
	rm -rf $(BIN)
