# make bench: the hot path's Go benchmarks, then the end-to-end scenarios
# of bench/e2e run on the built binary beside their baselines (issue 5).
# Not part of make test. Included from the Makefile.
#
#   make bench                      everything, median of 3 runs
#   make bench BENCH_RUNS=1         a quick look
#   make bench-backfill             one scenario (also bench-steady, bench-manyfiles)
#   make bench-profile              backfill with agent CPU profiles in $(BENCH_DIR)/profiles
#
# The 1 GB backfill file is generated once into BENCH_DIR and reused.

BENCH_RUNS ?= 3
BENCH_DIR ?= /var/tmp/logagent-bench
BENCH_FLAGS ?=
BENCH_E2E = $(GO) run ./bench/e2e -bin bin/logagent -dir $(BENCH_DIR) -runs $(BENCH_RUNS) $(BENCH_FLAGS)

.PHONY: bench bench-go bench-e2e bench-backfill bench-steady bench-manyfiles bench-profile

# benchstat, pinned in tools/go.mod, compares benchmark runs before and
# after a change: bin/benchstat old.txt new.txt
BENCHSTAT = bin/benchstat
$(BENCHSTAT): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../$(BENCHSTAT) golang.org/x/perf/cmd/benchstat

bench: bench-go bench-e2e

# Chunker (0 allocs/op), scheduler runner with a no-op output, and every
# output's encoder/Send benchmarks.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./inputs/file ./agent ./outputs/...

bench-e2e: build
	$(BENCH_E2E) all

bench-backfill: build
	$(BENCH_E2E) backfill

bench-steady: build
	$(BENCH_E2E) steady

bench-manyfiles: build
	$(BENCH_E2E) manyfiles

bench-profile: build
	$(BENCH_E2E) -cpuprofile $(BENCH_DIR)/profiles backfill
	@echo "profiles: go tool pprof -top $(BENCH_DIR)/profiles/backfill-lpm1-run0.pprof"
