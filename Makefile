# logagent — make run: build and run on config.example.yaml; make test: every test.

GO ?= go
VERSION := $(shell sh packaging/version.sh 2>/dev/null || echo 0.0.0~dev)
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Debian packages the tests need: Thrift's compiler and Python library for
# the interop tests (a Scribe and a Flume server and a Scribe client that
# are not ours), ZooKeeper for the discovery and registration tests, and
# systemd-journal-remote to write the journal files the journald tests read.
TEST_DEBS := thrift-compiler python3-thrift zookeeper systemd-journal-remote

.DEFAULT_GOAL := build
.PHONY: build run test test-deps test-go test-capped test-lint test-fuzz clean bench-rotation chaos-soak

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/logagent ./cmd/logagent

# Runs the agent on config.example.yaml: the sample logs in examples/logs and
# a generator that appends to examples/data/generated.log and rotates it.
# Output goes to examples/out/ and stdout. Ctrl-C stops both.
run: build
	@mkdir -p examples/data examples/out
	@$(GO) build -o bin/generator ./examples/generator
	@bin/generator -path examples/data/generated.log -rate 5 -rotate 50 & gen=$$!; \
	trap 'kill $$gen 2>/dev/null' EXIT INT TERM; \
	bin/logagent -c config.example.yaml

test: test-deps test-go test-lint test-fuzz test-packages

# Installs the Debian packages the tests need, once.
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test-go:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	CI=$${CI:-} $(GO) test -race -timeout 20m ./...

# The tests of test-go with each test binary, and every process it starts
# (the agents of the end-to-end tests, the Python peers), capped at CAP of
# one CPU in a cgroup of its own (tools/cpucap.sh: root, cgroup v1 or v2).
# It proves that no test depends on how fast the machine is; go test's
# compiling is not capped. Opt-in: not part of make test.
CAP ?= 0.25
test-capped: test-deps
	CAP=$(CAP) CI=$${CI:-} $(GO) test -race -timeout 40m -exec $(CURDIR)/tools/cpucap.sh ./...

# staticcheck, pinned in tools/go.mod like bin/benchstat, over every package
# but the code the Thrift compiler generated (internal/thriftgen).
STATICCHECK = bin/staticcheck
$(STATICCHECK): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../$(STATICCHECK) honnef.co/go/tools/cmd/staticcheck

test-lint: $(STATICCHECK)
	$(STATICCHECK) $$($(GO) list ./... | grep -v /internal/thriftgen/)

# Short fuzzing of the chunker, the config loader, the checkpoint's
# encoder and decoders, the JSON envelope and the journal's export format
# (seed corpora in testdata/ or the targets).
# Budgets are counts of runs, not durations: with a duration, Go's fuzz
# coordinator (before Go 1.27, go.dev/issue/75804) can fail a target with
# "context deadline exceeded" at the deadline on a busy machine, having
# found nothing.
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzChunker$$' -fuzztime 200000x ./inputs/file
	$(GO) test -run '^$$' -fuzz '^FuzzJoiner$$' -fuzztime 100000x ./inputs/file/multiline
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 20000x ./agent
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 100000x ./checkpoint
	$(GO) test -run '^$$' -fuzz '^FuzzAppendEntry$$' -fuzztime 30000x ./checkpoint
	$(GO) test -run '^$$' -fuzz '^FuzzAppend$$' -fuzztime 100000x ./outputs/envelope
	$(GO) test -run '^$$' -fuzz '^FuzzExport$$' -fuzztime 50000x ./inputs/journald

# Rename, copytruncate, delete and date-named rotation at full speed,
# through logagent and through nxadm/tail: lines written, lost, duplicated.
bench-rotation:
	$(GO) run ./bench/rotation

# The chaos test of make test (40 s), for ten minutes.
chaos-soak:
	LOGAGENT_CHAOS_DURATION=10m $(GO) test -race -run TestChaos -timeout 40m -v ./test/chaos

clean:
	rm -rf bin dist examples/data examples/out

include packaging/packaging.mk
include bench/bench.mk
