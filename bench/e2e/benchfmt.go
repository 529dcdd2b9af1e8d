package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// benchOut writes every measured run, not only the medians of the table,
// in the Go benchmark format, so that benchstat compares two commits:
//
//	BenchmarkE2E/backfill/lpm=1  1  1000123456 ns/op  6010000 lines/s  1080 MB/s ...
//
// One op is one run of the scenario; ns/op is its wall time (the measured
// window for steady and manyfiles).
type benchOut struct {
	f *os.File
	w *bufio.Writer
}

var bench *benchOut

// openBenchfmt opens path to append to it, and writes the header
// benchstat reads. Appending lets runs of two binaries be interleaved
// (old, new, old, new...), which holds better than two sittings on a
// shared machine; remove the file to start afresh. Only keys that are the
// same for every commit go in the header: benchstat makes a table per
// distinct header, so a commit hash would keep old and new apart.
func openBenchfmt(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	bench = &benchOut{f: f, w: bufio.NewWriter(f)}
	fmt.Fprintf(bench.w, "goos: %s\ngoarch: %s\npkg: github.com/logagent/logagent/bench/e2e\n", runtime.GOOS, runtime.GOARCH)
	if cpu := cpuModel(); cpu != "" {
		fmt.Fprintf(bench.w, "cpu: %s\n", cpu)
	}
	return bench.w.Flush()
}

func closeBenchfmt() error {
	if bench == nil {
		return nil
	}
	err := bench.w.Flush()
	if cerr := bench.f.Close(); err == nil {
		err = cerr
	}
	bench = nil
	return err
}

// metric is one value and unit of a benchmark line beyond those emit
// derives from a row.
type metric struct {
	v    float64
	unit string
}

// emit writes one run as BenchmarkE2E/name. The metrics come from r where
// set: wall as ns/op, lines/s (over wall less r.idle, as the table), MB/s, cpu-s/GB, cpu-ns/line, cpu-%, peak-MB,
// ratio (lines/s over that of tail -c +1 | cat on the same input in the
// same run), cpu-ratio (CPU over that of the baseline doing the same job
// in the same run), wakeups/s, p50-ms, p99-ms; then r.more and more. The line is flushed at once, so a run cut
// short keeps what it measured.
func emit(name string, r row, more ...metric) {
	if bench == nil {
		return
	}
	secs := r.active().Seconds()
	ms := []metric{{float64(r.wall.Nanoseconds()), "ns/op"}}
	add := func(ok bool, v float64, unit string) {
		if ok {
			ms = append(ms, metric{v, unit})
		}
	}
	add(!r.noRate && r.lines > 0 && secs > 0, float64(r.lines)/secs, "lines/s")
	add(r.bytes > 0 && secs > 0 && !r.perCore, float64(r.bytes)/secs/1e6, "MB/s")
	add(r.cpu > 0 && r.bytes > 0 && !r.perCore, r.cpu/(float64(r.bytes)/1e9), "cpu-s/GB")
	add(r.cpu > 0 && r.lines > 0 && !r.noRate, r.cpu*1e9/float64(r.lines), "cpu-ns/line")
	add(r.perCore, r.cpuPct, "cpu-%")
	add(r.rss > 0, float64(r.rss)/1e6, "peak-MB")
	add(r.ratio > 0, r.ratio, "ratio")
	add(r.cpuOf > 0, r.cpuOf, "cpu-ratio")
	add(r.wakeups > 0, r.wakeups, "wakeups/s")
	add(r.p50 > 0, float64(r.p50)/1e6, "p50-ms")
	add(r.p99 > 0, float64(r.p99)/1e6, "p99-ms")
	ms = append(ms, r.more...)
	ms = append(ms, more...)
	var b strings.Builder
	b.WriteString("BenchmarkE2E/")
	b.WriteString(strings.ReplaceAll(name, " ", "_"))
	b.WriteString(" \t1")
	for _, m := range ms {
		b.WriteString(" \t")
		b.WriteString(formatValue(m.v))
		b.WriteByte(' ')
		b.WriteString(m.unit)
	}
	b.WriteByte('\n')
	bench.w.WriteString(b.String())
	if err := bench.w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: -benchfmt:", err)
	}
}

// formatValue prints v with 4 significant digits, and no exponent.
func formatValue(v float64) string {
	prec := 0
	if a := math.Abs(v); a > 0 && a < 1000 {
		prec = 3 - int(math.Floor(math.Log10(a)))
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
