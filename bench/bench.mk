# make bench: the hot path's Go benchmarks, then the end-to-end scenarios
# of bench/e2e run on the built binary beside their baselines (issue 5).
# Not part of make test. Included from the Makefile.
#
#   make bench                      everything, median of 3 runs
#   make bench BENCH_RUNS=1         a quick look
#   make bench-backfill             one scenario (also bench-steady, bench-manyfiles, bench-linear)
#   make bench-linear               cost against file count (1..1,000) and line size (100 B..10 KB),
#                                   and peak RSS while the output is down
#   make bench-profile              backfill with agent CPU profiles in $(BENCH_DIR)/profiles
#   make bench-profile-steady       the steady 50-file case at the 5ms cadence, profiled over
#                                   its window only
#
# Every scenario counts delivery at a sink reading the output, runs the
# agent on default settings unless it is about a setting, and samples CPU
# and RSS from /proc while the job runs (never shutdown). Baselines do the
# same job in the same run: tail -F, which keeps following, piped to cat.
# Steady runs each cadence of -write-every (default 10ms,5ms: each file
# written once per tick) over 1 and 50 files. Quick runs scale down:
#
#   make bench-steady BENCH_RUNS=1 BENCH_FLAGS='-window 5s -write-every 5ms'
#   make bench-manyfiles BENCH_RUNS=1 BENCH_FLAGS='-many 1000 -many-settle 5s -many-window 10s'
#
# Many files with every file kept open (max_open_files above the file
# count, the setting of issue 19's quiet-files goal): BENCH_FLAGS=-many-max-open=-1
#
# The 1 GB backfill file and the linear inputs (7 x 256 MB) are generated
# once into BENCH_DIR and reused.
#
# Before/after a change: -benchfmt FILE writes every run (not only the
# median) in the Go benchmark format; benchstat compares two such files.
# Use 6 runs or more for benchstat's confidence intervals. The file is
# appended to: remove it first; on a busy machine, interleave the two
# binaries' runs (go run ./bench/e2e -bin A -runs 1 -benchfmt a.txt, then
# B, and again) rather than running one after the other.
#
# On a shared machine CPU time moves with the neighbours more than with a
# change: BENCH_FLAGS=-perf also counts the agent's instructions and context
# switches a line over the steady and many-files windows (perf stat, as
# root; Debian: linux-perf). perf's counting raises the CPU % itself:
# compare instr/line then.
#
#   make bench-backfill BENCH_RUNS=6 BENCH_FLAGS='-benchfmt /tmp/old.txt'
#   (change, rebuild)
#   make bench-backfill BENCH_RUNS=6 BENCH_FLAGS='-benchfmt /tmp/new.txt'
#   make bin/benchstat && bin/benchstat /tmp/old.txt /tmp/new.txt

BENCH_RUNS ?= 3
BENCH_DIR ?= /var/tmp/logagent-bench
BENCH_FLAGS ?=
BENCH_E2E = $(GO) run ./bench/e2e -bin bin/logagent -dir $(BENCH_DIR) -runs $(BENCH_RUNS) $(BENCH_FLAGS)

.PHONY: bench bench-go bench-e2e bench-backfill bench-steady bench-manyfiles bench-linear bench-profile

# benchstat, pinned in tools/go.mod, compares benchmark runs before and
# after a change: bin/benchstat old.txt new.txt
BENCHSTAT = bin/benchstat
$(BENCHSTAT): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../$(BENCHSTAT) golang.org/x/perf/cmd/benchstat

bench: bench-go bench-e2e

# Chunker (0 allocs/op), scheduler runner with a no-op output (raw and
# format: json), the envelope encoder beside a raw copy, and every
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

bench-linear: build
	$(BENCH_E2E) linear

bench-profile: build
	$(BENCH_E2E) -cpuprofile $(BENCH_DIR)/profiles backfill
	@echo "profiles: go tool pprof -top $(BENCH_DIR)/profiles/backfill-lpm1-run0.pprof"

# A backfill to Kafka (kfake) directly and through a Scribe relay, in one
# run: lines/s and CPU seconds per MB of the agent and of the relay.
.PHONY: bench-relay
bench-relay: build
	$(GO) run ./bench/relay -bin bin/logagent

.PHONY: bench-profile-steady
bench-profile-steady: build
	$(BENCH_E2E) -cpuprofile $(BENCH_DIR)/profiles -files 50 -write-every 5ms -steady-base=false steady
	@echo "profile: go tool pprof -top $(BENCH_DIR)/profiles/steady-50-5ms-run0.pprof"
