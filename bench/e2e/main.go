// Command e2e is logagent's end-to-end benchmark. It runs the built agent
// binary on generated logs and measures it beside baselines in the same
// run, so that ratios hold on a machine whose absolute speed drifts.
//
//	e2e backfill   ship a ~1 GB file of 6,000,000 nginx-style lines to a
//	               file output (lines_per_message 1 and 64, format: json
//	               with lines_per_message 1, and multiline; and raw and
//	               multiline on a file of Java stack traces), beside
//	               cat > /dev/null, tail -F -c +1 | cat > out and wc -l;
//	               the agent and tail -F are timed until a sink reading
//	               their output has counted every line
//	e2e steady     tail 100,000 lines/s written over 1 and over 50 files,
//	               each file written once per tick of -write-every (10ms
//	               and 5ms), beside tail -F FILES | cat > out at the same
//	               cadence in the same run: CPU % of a core, CPU over
//	               tail's, wake-ups a second, p50/p99 write-to-sink delay,
//	               RSS
//	e2e manyfiles  10,000 files (-many) each getting a line a minute, on
//	               default settings (max_open_files 4096): idle CPU %,
//	               wake-ups a second, RSS per open file, time to pick up
//	               a new file; beside tail -F FILES | cat > out over the
//	               same files and writes in the same run (-many-base)
//	e2e linear     whether cost grows linearly: backfill of ~256 MB over 1,
//	               10, 100 and 1,000 files (200 B lines) and in lines of
//	               100 B, 1 KB and 10 KB (1 file), each beside
//	               tail -q -c +1 FILES | cat > out on the same input, as
//	               lines/s, MB/s, CPU s/GB, CPU ns/line and peak RSS; then
//	               the file output held down (RLIMIT_FSIZE on the agent)
//	               for 10 s while 256 MB are written to the input, per
//	               max_inflight_bytes: peak RSS against the normal run,
//	               and every line delivered once it is lifted
//	e2e all        the four
//
// In linear, lines/s, MB/s and the ratio leave out the time the output sat
// still for 150 ms or more: a batch that is not full, the last one, waits
// out flush_interval (200 ms) even at the end of the input, and on this
// input that wait is most of the wall. The wall column keeps it. CPU ns/line,
// which no waiting blurs, is the figure to compare across rows.
//
// The scenarios run the agent on default settings unless they are about a
// setting, and count delivery at a sink that reads the output. The CPU
// time and RSS of the agent and of the baselines come from /proc, sampled
// while they run: for backfill the moment the sink counts the last line,
// for steady and manyfiles at the edges of the window; shutdown is never
// counted (linear's agent runs end when the output reaches the input's
// size, and its tail -c +1 | cat baseline still stops at the end of the
// input; the baselines that exit are measured by rusage). Wake-ups are the
// voluntary and involuntary context switches of every thread
// (/proc/PID/task/*/status). Delays come from the write time stamped into
// each line. Every scenario checks that the output holds exactly the lines
// written.
//
// With -benchfmt FILE every run (not only the median of the table) is also
// appended to FILE in the Go benchmark format, one line per run, such as
//
//	BenchmarkE2E/backfill/lpm=1  1  1000123456 ns/op  6010000 lines/s  1080 MB/s  0.8600 cpu-s/GB  153.3 cpu-ns/line  33.20 peak-MB  0.8600 ratio
//	BenchmarkE2E/linear/files=1000/line=200B  1  ...
//
// ratio is lines/s over that of tail -F -c +1 | cat on the same input in
// the same run (the baselines are written too, as .../base=tail-cat), and
// cpu-ratio the CPU time over the baseline's (steady: over that of
// .../base=tail-F at the same cadence; manyfiles: of
// manyfiles/files=N/base=tail-F), which
// holds better than absolute speed on a shared machine. Two commits then
// compare with benchstat (make bin/benchstat), best with 6 runs or more:
//
//	go run ./bench/e2e -bin /tmp/old/logagent -runs 6 -benchfmt /tmp/old.txt backfill
//	go run ./bench/e2e -bin /tmp/new/logagent -runs 6 -benchfmt /tmp/new.txt backfill
//	bin/benchstat /tmp/old.txt /tmp/new.txt
//
// With -cpuprofile DIR the agent runs as bench/agentprof (the same run
// path with a CPU profile written by LOGAGENT_CPUPROFILE, and a heap
// profile by LOGAGENT_MEMPROFILE); profiles land in DIR, one per scenario
// run (NAME.pprof, NAME.heap.pprof). Steady and manyfiles profile their
// measured window only, and take the heap profile at its end, and at its
// start (NAME.heap.pprof.start): what the window allocated is
// go tool pprof -sample_index=alloc_space -base NAME.heap.pprof.start NAME.heap.pprof.
// Each heap profile forces a collection, the start's inside the window:
// a profiled run's CPU and RSS are not the plain agent's, measure those
// without -cpuprofile.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	dir        = flag.String("dir", "/var/tmp/logagent-bench", "work `dir`: the generated file is kept here and reused")
	bin        = flag.String("bin", "bin/logagent", "logagent `binary`")
	runs       = flag.Int("runs", 3, "runs per scenario; the median is reported")
	lines      = flag.Int("lines", 6_000_000, "backfill: lines in the generated file")
	lpms       = flag.String("lpm", "1,64", "backfill: lines_per_message values to run")
	jsonRun    = flag.Bool("json", true, "backfill: also run the file output with format: json (lines_per_message 1)")
	mlRun      = flag.Bool("multiline", true, "backfill: also run with multiline on: over the nginx file (start: a pattern every line matches, so that each line is an event of its own and the output is the input), and over a file of Java stack traces of the same size, beside raw on it")
	keep       = flag.Bool("keep", true, "keep the generated 1 GB file for the next run")
	rate       = flag.Int("rate", 100_000, "steady: lines per second written, over all files")
	steadyN    = flag.String("files", "1,50", "steady: file counts to run")
	window     = flag.Duration("window", 20*time.Second, "steady: measured window")
	writeEvery = flag.String("write-every", "10ms,5ms", "steady: cadences to run: each file is written once this often (the lines of that time in one write)")
	steadyBase = flag.Bool("steady-base", true, "steady: run tail -F FILES | cat at the same cadence beside the agent, in the same run")
	manyN      = flag.Int("many", 10_000, "manyfiles: files")
	manyWindow = flag.Duration("many-window", 30*time.Second, "manyfiles: measured window")
	manySettle = flag.Duration("many-settle", 30*time.Second, "manyfiles: lines are written this long after start-up before the window opens (steady state, not start-up, is measured)")
	manyOpen   = flag.Int("many-max-open", 0, "manyfiles: the input's max_open_files; 0 keeps the default (4096), -1 raises it above the file count so that all stay open")
	perFile    = flag.Duration("per-file", time.Minute, "manyfiles: each file gets a line this often")
	newFiles   = flag.Int("new-files", 6, "manyfiles: new files created during the window, evenly spaced")
	manyBase   = flag.Bool("many-base", true, "manyfiles: run tail -F FILES | cat over the same files and writes beside the agent, in the same run (it is given the files at its start, so no new files)")
	linearMB   = flag.Int("linear-mb", 256, "linear: MB of input per case, in every file count and line size")
	linFiles   = flag.String("linear-files", "1,10,100,1000", "linear: file counts to run (lines of -linear-line bytes)")
	linLine    = flag.Int("linear-line", 200, "linear: line size in bytes, newline included, for the file counts")
	linSizes   = flag.String("linear-sizes", "100,1000,10000", "linear: line sizes to run over 1 file")
	outage     = flag.Duration("outage", 10*time.Second, "linear: how long the output is held down; 0 skips it")
	outageInfl = flag.String("outage-inflight", "32MiB,128MiB", "linear: max_inflight_bytes values to hold the output down with")
	benchfmt   = flag.String("benchfmt", "", "also append every run to `file` in the Go benchmark format, for benchstat")
	cpuprofile = flag.String("cpuprofile", "", "write agent CPU profiles to `dir` (runs bench/agentprof)")
	verbose    = flag.Bool("v", false, "show the agent's log")
	agentTop   = flag.String("agent-config", "", "top-level config `lines` (separated by ;) added to the agent's config in every scenario, e.g. 'checkpoint_interval: 50ms', to measure a setting")
	perf       = flag.Bool("perf", false, "steady, manyfiles: also count the agent's instructions and context switches a line in the window, with perf stat (as root; Debian: linux-perf)")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: e2e [flags] backfill|steady|manyfiles|linear|all\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

func run(what string) error {
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	if *cpuprofile != "" {
		if err := os.MkdirAll(*cpuprofile, 0o755); err != nil {
			return err
		}
		*bin = filepath.Join(*dir, "agentprof")
		build := exec.Command("go", "build", "-o", *bin, "./bench/agentprof")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build agentprof: %w", err)
		}
	}
	if _, err := os.Stat(*bin); err != nil {
		return fmt.Errorf("%w (build it first: go build -o bin/logagent ./cmd/logagent)", err)
	}
	if *benchfmt != "" {
		if err := openBenchfmt(*benchfmt); err != nil {
			return err
		}
		defer func() {
			if err := closeBenchfmt(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: -benchfmt:", err)
			}
		}()
	}
	var rows []row
	var err error
	switch what {
	case "backfill":
		rows, err = backfill()
	case "steady":
		rows, err = steady()
	case "manyfiles":
		rows, err = manyFiles()
	case "linear":
		rows, err = linear()
	case "all":
		for _, f := range []func() ([]row, error){backfill, steady, manyFiles, linear} {
			r, ferr := f()
			rows = append(rows, r...)
			if ferr != nil {
				err = ferr
				break
			}
		}
	default:
		return fmt.Errorf("unknown scenario %q", what)
	}
	if len(rows) > 0 {
		printTable(rows)
	}
	return err
}

// row is one line of the results table; zero fields print as "—".
type row struct {
	name    string
	wall    time.Duration
	cpu     float64 // seconds, user+sys
	cpuPct  float64 // % of one core over a window (steady, manyfiles)
	bytes   int64
	rss     int64 // peak, bytes
	lines   int64
	ratio   float64 // lines/s relative to tail|cat
	p99     time.Duration
	p50     time.Duration
	wakeups float64       // steady: context switches a second, every thread of every process
	cpuOf   float64       // CPU over that of the baseline doing the same job in the same run
	pickup  time.Duration // manyfiles: the slowest pick-up of a new file
	idle    time.Duration // linear: part of wall the output sat still, waiting out flush_interval; rates leave it out
	first   time.Duration // linear: first output byte, from the agent's start
	more    []metric      // -benchfmt: further metrics of the run
	extra   string
	noRate  bool // lines/s is not the point (wc -l counts, cat reads)
	perCore bool // show CPU % rather than CPU s/GB
}

func printTable(rows []row) {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintf(w, "\n| scenario | wall | CPU s | CPU s/GB | CPU ns/line | CPU %% core | CPU × base | wake-ups/s | peak RSS | lines/s | MB/s | × tail\\|cat | p50 delay | p99 delay | notes |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	dash := func(ok bool, s string) string {
		if !ok {
			return "—"
		}
		return s
	}
	for _, r := range rows {
		secs := r.active().Seconds()
		gb := float64(r.bytes) / 1e9
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			strings.ReplaceAll(r.name, "|", "\\|"),
			dash(r.wall > 0, fmt.Sprintf("%.2f s", r.wall.Seconds())),
			dash(r.cpu > 0, fmt.Sprintf("%.2f", r.cpu)),
			dash(r.cpu > 0 && gb > 0 && !r.perCore, fmt.Sprintf("%.2f", r.cpu/gb)),
			dash(r.cpu > 0 && r.lines > 0 && !r.noRate, fmt.Sprintf("%.0f", r.cpu*1e9/float64(r.lines))),
			dash(r.perCore, fmt.Sprintf("%.1f%%", r.cpuPct)),
			dash(r.cpuOf > 0, fmt.Sprintf("%.2f", r.cpuOf)),
			dash(r.wakeups > 0, fmt.Sprintf("%.0f", r.wakeups)),
			dash(r.rss > 0, fmt.Sprintf("%.1f MB", float64(r.rss)/1e6)),
			dash(!r.noRate && r.lines > 0 && secs > 0, fmt.Sprintf("%.2f M", float64(r.lines)/secs/1e6)),
			dash(r.bytes > 0 && secs > 0, fmt.Sprintf("%.0f", float64(r.bytes)/secs/1e6)),
			dash(r.ratio > 0, fmt.Sprintf("%.2f", r.ratio)),
			dash(r.p50 > 0, fmt.Sprintf("%.1f ms", float64(r.p50)/1e6)),
			dash(r.p99 > 0, fmt.Sprintf("%.1f ms", float64(r.p99)/1e6)),
			r.extra)
	}
}

// active is the wall time the rates are of: wall without idle.
func (r row) active() time.Duration { return r.wall - r.idle }

// median returns the run with the median wall time.
func median(rs []row) row {
	slices.SortFunc(rs, func(a, b row) int { return int(a.wall - b.wall) })
	return rs[len(rs)/2]
}

// ---------------------------------------------------------------- backfill

type inputSum struct {
	lines, size int64
	sum         string
}

func backfill() ([]row, error) {
	in := filepath.Join(*dir, "backfill", "in", "access.log")
	sum, err := ensureInput(in, *lines)
	if err != nil {
		return nil, err
	}
	if !*keep {
		defer os.Remove(in)
	}
	var lpmList []int
	for _, s := range strings.Split(*lpms, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-lpm: bad value %q", s)
		}
		lpmList = append(lpmList, n)
	}
	fmt.Printf("backfill: %s, %d lines, %.2f GB, %d runs\n", in, sum.lines, float64(sum.size)/1e9, *runs)
	// Warm the page cache: every contender reads from memory.
	if _, err := measure(exec.Command("cat", in), nil); err != nil {
		return nil, err
	}
	out := filepath.Join(*dir, "backfill", "out")
	byName := map[string][]row{}
	var order []string
	var runBase row // tail | cat of this run
	add := func(r row, bname string) {
		if _, ok := byName[r.name]; !ok {
			order = append(order, r.name)
		}
		byName[r.name] = append(byName[r.name], r)
		if !r.noRate && r.lines > 0 && runBase.wall > 0 {
			r.ratio = runBase.wall.Seconds() / r.wall.Seconds() * float64(r.lines) / float64(runBase.lines)
			r.cpuOf = r.cpu / runBase.cpu
		}
		emit("backfill/"+bname, r)
	}
	for i := 0; i < *runs; i++ {
		runBase = row{}
		r, err := measure(exec.Command("sh", "-c", "cat "+in+" > /dev/null"), nil)
		if err != nil {
			return nil, err
		}
		r.name, r.bytes, r.noRate = "`cat FILE > /dev/null`", sum.size, true
		add(r, "base=cat")

		r, err = backfillTail(in, out, sum)
		if err != nil {
			return nil, err
		}
		runBase = r
		add(r, "base=tail-cat")

		r, err = measure(exec.Command("sh", "-c", "wc -l "+in+" > /dev/null"), nil)
		if err != nil {
			return nil, err
		}
		r.name, r.bytes, r.lines, r.noRate = "`wc -l FILE`", sum.size, sum.lines, true
		add(r, "base=wc-l")

		for _, lpm := range lpmList {
			r, err := backfillAgent(in, sum, i, agentCase{
				name:      fmt.Sprintf("logagent, lines_per_message %d", lpm),
				key:       fmt.Sprintf("lpm%d", lpm),
				top:       []string{"shutdown_timeout: 60s"},
				input:     []string{fmt.Sprintf("lines_per_message: %d", lpm)},
				summarize: summarize,
			})
			if err != nil {
				return nil, err
			}
			add(r, fmt.Sprintf("lpm=%d", lpm))
		}
		if *jsonRun {
			r, err := backfillAgent(in, sum, i, agentCase{
				name:      "logagent, format: json",
				key:       "json",
				top:       []string{"shutdown_timeout: 60s", "hostname: bench"},
				output:    []string{"format: json"},
				summarize: summarizeMessages, // the envelopes' messages
			})
			if err != nil {
				return nil, err
			}
			add(r, "format=json")
		}
		if *mlRun {
			// Every nginx line begins with an IP address: each is an
			// event of its own, the most events (and so the most work)
			// a GB can hold, and the output is the input. The pattern
			// is no literal, so each line costs a regexp match. The
			// file's last event waits out timeout (1s): count its cost
			// in CPU s/GB, which waiting does not change.
			r, err := backfillAgent(in, sum, i, agentCase{
				name:      "logagent, multiline",
				key:       "multiline",
				top:       []string{"shutdown_timeout: 60s"},
				input:     []string{`multiline: {start: '^\d+\.\d+\.\d+\.\d+ '}`},
				summarize: summarize,
			})
			if err != nil {
				return nil, err
			}
			add(r, "multiline=start")
		}
		if *mlRun {
			// Java stack traces: most lines continue an event and are
			// ruled out by their first byte. Raw on the same file is the
			// baseline of this case.
			tin := filepath.Join(*dir, "backfill", "in", "traces.log")
			tsum, err := ensureTraces(tin, sum.size)
			if err != nil {
				return nil, err
			}
			if !*keep {
				defer os.Remove(tin)
			}
			for _, c := range []agentCase{
				{name: "logagent, traces, raw", key: "traces-raw"},
				{name: "logagent, traces, multiline", key: "traces-multiline", input: []string{`multiline: {start: '^\d{4}-\d{2}-\d{2}[ T]'}`}},
			} {
				c.top, c.summarize = []string{"shutdown_timeout: 60s"}, summarize
				r, err := backfillAgent(tin, tsum, i, c)
				if err != nil {
					return nil, err
				}
				add(r, c.key)
			}
		}
	}
	var rows []row
	base := median(slices.Clone(byName[tailBackfillName]))
	baseRate := float64(base.lines) / base.wall.Seconds()
	for _, name := range order {
		m := median(byName[name])
		if !m.noRate && m.lines > 0 {
			m.ratio = float64(m.lines) / m.wall.Seconds() / baseRate
			m.cpuOf = m.cpu / base.cpu
		}
		if len(byName[name]) > 1 {
			var walls []string
			for _, r := range byName[name] {
				walls = append(walls, fmt.Sprintf("%.2f", r.wall.Seconds()))
			}
			m.extra = strings.TrimSpace(m.extra + " walls " + strings.Join(walls, "/"))
		}
		rows = append(rows, m)
	}
	return rows, nil
}

const tailBackfillName = "`tail -F -c +1 FILE | cat > out`"

// backfillTail runs the baseline of a backfill: tail following in from its
// start, as a shipper does, into cat > out, timed and sampled as the agent
// is (untilLines); tail is stopped only then.
func backfillTail(in, out string, sum inputSum) (row, error) {
	tailOut := filepath.Join(out, "tail.out")
	os.Remove(tailOut)
	defer os.Remove(tailOut)
	p, err := startPipeline(tailOut, "tail", "-F", "-c", "+1", in)
	if err != nil {
		return row{}, err
	}
	u, err := untilLines(p, tailOut, sum.lines, 10*time.Minute)
	if serr := p.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return row{}, err
	}
	if fi, err := os.Stat(tailOut); err != nil || fi.Size() != sum.size {
		return row{}, fmt.Errorf("tail -F: output is not the %d bytes of the input: %v", sum.size, err)
	}
	return row{
		name:  tailBackfillName,
		wall:  u.at.Sub(p.started),
		cpu:   u.cpu.Seconds(),
		bytes: sum.size,
		rss:   u.peak,
		lines: sum.lines,
		extra: "tail and cat summed",
	}, nil
}

// untilLines counts the lines of out, the sink's view of what s
// delivered, until there are want, and samples s's processes at that
// moment: the wall time ends there, and the CPU time and peak RSS are
// those of the job, not of stopping.
func untilLines(s shipper, out string, want int64, limit time.Duration) (usage, error) {
	at := make(chan usage, 1)
	o := &outputReader{path: out, countOnly: true, target: want, onTarget: func() { at <- sample(s) }}
	defer o.start()()
	deadline := time.After(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case u := <-at:
			return u, nil
		case <-deadline:
			return usage{}, fmt.Errorf("%s: %d lines after %s, want %d", out, o.lines.Load(), limit, want)
		case <-tick.C:
			if s.exited() {
				return usage{}, s.fail()
			}
		}
	}
}

// agentCase is one way of running the agent in the backfill: extra
// top-level, input and output keys, and how its output is read back to be
// compared with the input.
type agentCase struct {
	name, key          string // the row's name; the work and log name
	top, input, output []string
	summarize          func(path string) (inputSum, error)
}

// backfillAgent runs the agent once on in until the sink has counted
// every line of the output; wall time ends there, before the agent is
// stopped. The output, read back with c.summarize, must be the input.
func backfillAgent(in string, sum inputSum, run int, c agentCase) (row, error) {
	work := filepath.Join(*dir, "backfill", "agent-"+c.key)
	os.RemoveAll(work)
	defer os.RemoveAll(work)
	outFile := filepath.Join(work, "out", "bench.log")
	cfg := agentConfig(work, in, outFile, c.top, c.input, c.output)
	a, err := startAgent(work, cfg, fmt.Sprintf("backfill-%s-run%d", c.key, run), false)
	if err != nil {
		return row{}, err
	}
	u, err := untilLines(a, outFile, sum.lines, 10*time.Minute)
	_, serr := a.stop()
	if err != nil {
		return row{}, err
	}
	if serr != nil {
		return row{}, serr
	}
	got, err := c.summarize(outFile)
	if err != nil {
		return row{}, err
	}
	if got != sum {
		return row{}, fmt.Errorf("%s: output differs from input: %d lines, %d bytes, sha256 %s; want %d lines, %d bytes, sha256 %s",
			c.name, got.lines, got.size, got.sum, sum.lines, sum.size, sum.sum)
	}
	extra := "output verified"
	if fi, err := os.Stat(outFile); err == nil && fi.Size() != sum.size {
		extra += fmt.Sprintf(" (%.2f GB written)", float64(fi.Size())/1e9)
	}
	return row{
		name:  c.name,
		wall:  u.at.Sub(a.started),
		cpu:   u.cpu.Seconds(),
		bytes: sum.size,
		rss:   u.peak,
		lines: sum.lines,
		extra: extra,
	}, nil
}

// summarizeMessages decodes every envelope of path and summarizes their
// bodies, each with a newline, as summarize does a file.
func summarizeMessages(path string) (inputSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return inputSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	var s inputSum
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		var e struct {
			Message       string  `json:"message"`
			MessageBase64 *string `json:"message_base64"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return inputSum{}, fmt.Errorf("%s: line %d: %v", path, s.lines+1, err)
		}
		body := []byte(e.Message)
		if e.MessageBase64 != nil {
			if body, err = base64.StdEncoding.DecodeString(*e.MessageBase64); err != nil {
				return inputSum{}, err
			}
		}
		h.Write(body)
		h.Write([]byte{'\n'})
		s.size += int64(len(body)) + 1
		s.lines++
	}
	s.sum = hex.EncodeToString(h.Sum(nil))
	return s, sc.Err()
}

// measure runs cmd to its end and returns its wall time and, through
// rusage, the CPU and peak RSS of it and every descendant it waited for.
// That peak is at least the e2e process's own at the start (see stop): a
// ceiling for the baselines, which are small.
func measure(cmd *exec.Cmd, stdout io.Writer) (row, error) {
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return row{}, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return row{wall: wall, cpu: cpuSeconds(ru), rss: ru.Maxrss * 1024}, nil
}

func cpuSeconds(ru *syscall.Rusage) float64 {
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
}

// ensureInput generates the backfill file unless it exists with a summary
// beside it, and returns that summary.
func ensureInput(path string, n int) (inputSum, error) {
	ok := func(s inputSum) bool { return s.lines == int64(n) }
	return ensureFile(path, fmt.Sprintf("%d lines", n), ok, func(w io.Writer) (lines, size int64) {
		g := newLineGen(1)
		var line []byte
		for i := 0; i < n; i++ {
			line = g.nginx(line[:0], int64(i))
			line = append(line, '\n')
			w.Write(line)
			size += int64(len(line))
		}
		return int64(n), size
	})
}

// ensureTraces generates a file of Java stack traces of at least size bytes
// unless it exists with a summary beside it, and returns that summary.
func ensureTraces(path string, size int64) (inputSum, error) {
	ok := func(s inputSum) bool { return s.size >= size }
	return ensureFile(path, fmt.Sprintf("%d bytes of stack traces", size), ok, func(w io.Writer) (lines, written int64) {
		r := rand.New(rand.NewPCG(2, 42))
		var b []byte
		t := time.Date(2024, 10, 10, 13, 0, 0, 0, time.UTC)
		for seq := int64(0); written < size; seq++ {
			b = t.Add(time.Duration(seq)*time.Millisecond).AppendFormat(b[:0], "2006-01-02 15:04:05.000")
			b = append(b, " ERROR [worker-"...)
			b = strconv.AppendInt(b, int64(r.IntN(64)), 10)
			b = append(b, "] request "...)
			b = strconv.AppendInt(b, seq, 10)
			b = append(b, " failed: upstream answered 503 after 3 retries\n"...)
			if r.IntN(10) >= 4 { // 60% carry a trace of 4 to 20 lines
				b = append(b, "java.lang.IllegalStateException: upstream unavailable\n"...)
				for k, n := 0, 3+r.IntN(14); k < n; k++ {
					b = append(b, "\tat com.example.service.Handler"...)
					b = strconv.AppendInt(b, int64(k), 10)
					b = append(b, ".handle(Handler.java:"...)
					b = strconv.AppendInt(b, int64(10+r.IntN(400)), 10)
					b = append(b, ")\n"...)
				}
			}
			w.Write(b)
			written += int64(len(b))
			lines += int64(bytes.Count(b, []byte{'\n'}))
		}
		return lines, written
	})
}

// ensureFile returns the summary beside path (path.sum) if ok accepts it
// and path has its size; otherwise it generates path with gen, which
// writes the content (described by what) and returns its lines and size,
// and writes the summary beside it.
func ensureFile(path, what string, ok func(inputSum) bool, gen func(w io.Writer) (lines, size int64)) (inputSum, error) {
	sumPath := path + ".sum"
	if data, err := os.ReadFile(sumPath); err == nil {
		var s inputSum
		if _, err := fmt.Sscan(string(data), &s.lines, &s.size, &s.sum); err == nil && ok(s) {
			if fi, err := os.Stat(path); err == nil && fi.Size() == s.size {
				return s, nil
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return inputSum{}, err
	}
	fmt.Printf("generating %s (%s)...\n", path, what)
	f, err := os.Create(path)
	if err != nil {
		return inputSum{}, err
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var s inputSum
	s.lines, s.size = gen(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return inputSum{}, err
	}
	if err := f.Close(); err != nil {
		return inputSum{}, err
	}
	s.sum = hex.EncodeToString(h.Sum(nil))
	return s, os.WriteFile(sumPath, fmt.Appendf(nil, "%d %d %s\n", s.lines, s.size, s.sum), 0o644)
}

// summarize counts the lines of path and hashes it.
func summarize(path string) (inputSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return inputSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var s inputSum
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		s.size += int64(n)
		s.lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		if err == io.EOF {
			break
		}
		if err != nil {
			return inputSum{}, err
		}
	}
	s.sum = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// lineGen makes nginx combined log lines of about 180 bytes.
type lineGen struct{ r *rand.Rand }

func newLineGen(seed uint64) *lineGen { return &lineGen{r: rand.New(rand.NewPCG(seed, 42))} }

var (
	methods = []string{"GET", "GET", "GET", "POST", "PUT", "HEAD"}
	paths   = []string{"/api/v1/items/", "/static/js/app.", "/catalog/page/", "/user/profile/", "/search?q="}
	codes   = []int{200, 200, 200, 200, 301, 304, 404, 500}
	agents  = []string{
		"Mozilla/5.0 (X11; Linux x86_64) Firefox/118.0",
		"Mozilla/5.0 (Windows NT 10.0) Chrome/117.0",
		"curl/7.88.1",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1",
	}
)

// nginx appends line seq (without newline) to b.
func (g *lineGen) nginx(b []byte, seq int64) []byte {
	r := g.r
	b = append(b, "10."...)
	b = strconv.AppendInt(b, int64(r.IntN(256)), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(r.IntN(256)), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(r.IntN(256)), 10)
	b = append(b, " - - ["...)
	t := time.Date(2024, 10, 10, 13, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond)
	b = t.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = append(b, methods[r.IntN(len(methods))]...)
	b = append(b, ' ')
	b = append(b, paths[r.IntN(len(paths))]...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, " HTTP/1.1\" "...)
	b = strconv.AppendInt(b, int64(codes[r.IntN(len(codes))]), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.IntN(50000)), 10)
	b = append(b, " rt=0.0"...)
	b = strconv.AppendInt(b, int64(10+r.IntN(90)), 10)
	b = append(b, " \"https://www.example.com/ref/"...)
	b = strconv.AppendUint(b, r.Uint64()&0xffffff, 16)
	b = append(b, "\" \""...)
	b = append(b, agents[r.IntN(len(agents))]...)
	b = append(b, '"')
	return b
}

// ---------------------------------------------------------------- agent

type agentProc struct {
	cmd      *exec.Cmd
	started  time.Time
	done     chan struct{}
	err      error
	windowed bool // profiling waits for measureWindow
	work     string
	perfRun  *perfRun    // -perf: counting the window
	perf     *perfCounts // -perf: the window's counts
	peak     int64       // VmHWM when stop was called
}

// agentConfig is a scenario's configuration: state under work, log level
// warn, input "bench" of glob, file output "out" to outFile. top, input and
// output are more "key: value" lines at the top level, in the input and in
// the output.
func agentConfig(work, glob, outFile string, top, input, output []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %s/state\n", work)
	if *agentTop != "" {
		top = append(strings.Split(*agentTop, ";"), top...)
	}
	for _, l := range top {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "log_level: warn\ninputs:\n  - id: bench\n    paths: [%q]\n", glob)
	for _, l := range input {
		b.WriteString("    " + l + "\n")
	}
	fmt.Fprintf(&b, "outputs:\n  - id: out\n    type: file\n    path: %s\n", outFile)
	for _, l := range output {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// startAgent writes cfg to work/config.yaml and starts the agent on it.
// With -cpuprofile, the profile covers the whole run, or with windowed
// only what lies between measureWindow(true) and measureWindow(false).
func startAgent(work, cfg, profName string, windowed bool) (*agentProc, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(work, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(*bin, "-c", cfgPath)
	cmd.Stdout = os.Stdout
	if *verbose {
		cmd.Stderr = os.Stderr
	} else {
		cmd.Stderr = &tailBuffer{}
	}
	if *cpuprofile != "" {
		p, _ := filepath.Abs(filepath.Join(*cpuprofile, profName+".pprof"))
		cmd.Env = append(os.Environ(), "LOGAGENT_CPUPROFILE="+p, "LOGAGENT_MEMPROFILE="+strings.TrimSuffix(p, ".pprof")+".heap.pprof")
		if windowed {
			cmd.Env = append(cmd.Env, "LOGAGENT_CPUPROFILE_WINDOW=signal")
		}
	}
	a := &agentProc{cmd: cmd, done: make(chan struct{}), windowed: windowed && *cpuprofile != "", work: work}
	a.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		a.err = cmd.Wait()
		close(a.done)
	}()
	return a, nil
}

// measureWindow opens (on) or closes the measured window of an agent:
// under -cpuprofile, if it was started windowed, its profiled window;
// under -perf, perf stat's count, kept in a.perf.
func (a *agentProc) measureWindow(on bool) error {
	if a.windowed {
		sig := syscall.SIGUSR2
		if on {
			sig = syscall.SIGUSR1
		}
		a.cmd.Process.Signal(sig)
	}
	if !*perf {
		return nil
	}
	if on {
		p, err := startPerf(a.cmd.Process.Pid, filepath.Join(a.work, "perf.txt"))
		a.perfRun = p
		return err
	}
	if a.perfRun == nil {
		return nil
	}
	c, err := a.perfRun.stop()
	a.perfRun = nil
	a.perf = &c
	return err
}

// kill kills the agent unless it has exited, and waits for it; and the
// perf stat counting it, if a scenario ended inside its window.
func (a *agentProc) kill() {
	if !a.exited() {
		a.cmd.Process.Kill()
		<-a.done
	}
	if a.perfRun != nil {
		a.perfRun.kill()
		a.perfRun = nil
	}
}

func (a *agentProc) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits, and returns the agent's rusage. Its peak RSS
// up to the signal is kept in a.peak: the rusage's Maxrss is not the
// agent's own on Linux, which counts in the peak of the image the agent
// was exec'd from, the e2e process itself (os/exec uses vfork).
func (a *agentProc) stop() (*syscall.Rusage, error) {
	_, a.peak = a.rss()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(2 * time.Minute):
		a.kill()
		return nil, errors.New("agent did not stop within 2m of SIGTERM")
	}
	if a.err != nil {
		return nil, fmt.Errorf("agent: %w%s", a.err, a.stderr())
	}
	return a.cmd.ProcessState.SysUsage().(*syscall.Rusage), nil
}

func (a *agentProc) stderr() string {
	if t, ok := a.cmd.Stderr.(*tailBuffer); ok && t.Len() > 0 {
		return "\n" + t.String()
	}
	return ""
}

// rss returns the agent's resident and peak resident set, from /proc.
func (a *agentProc) rss() (cur, peak int64) { return procRSS(a.cmd.Process.Pid) }

// tailBuffer keeps the last 16 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Buffer.Write(p)
	if t.Len() > 16<<10 {
		t.Next(t.Len() - 16<<10)
	}
	return len(p), nil
}

// ---------------------------------------------------------------- tailing

// stampedLine appends a line of about 180 bytes that starts with the time
// it is written, in Unix nanoseconds, and the file and sequence numbers.
func stampedLine(b []byte, now time.Time, file int, seq int64, g *lineGen) []byte {
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(file), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	start := len(b)
	b = g.nginx(b, seq)
	if len(b)-start > 150 {
		b = b[:start+150]
	}
	return append(b, '\n')
}

// outputReader follows the agent's output file, timing every line from the
// stamp in it to when it is seen.
type outputReader struct {
	path   string
	lines  atomic.Int64
	mu     sync.Mutex
	delays []time.Duration // of lines stamped within the window
	from   atomic.Int64    // unix nanos: stamps before are not measured
	to     atomic.Int64
	seen   map[string]time.Time // first line of each file, by file number (manyfiles)

	// Set before start: countOnly counts newlines and parses nothing
	// (backfill); onTarget, if set, is called once, by the reading
	// goroutine, the moment the count reaches target.
	countOnly bool
	target    int64
	onTarget  func()
}

// counted adds n lines, and calls onTarget when they reach target.
func (o *outputReader) counted(n int64) {
	now := o.lines.Add(n)
	if o.onTarget != nil && now >= o.target && now-n < o.target {
		o.onTarget()
	}
}

// start reads the output in the background, timing nothing until
// from and to are set, until the returned stop is called.
func (o *outputReader) start() (stop func()) {
	o.from.Store(1 << 62) // nothing is timed before the window
	o.to.Store(1 << 62)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.run(ctx)
	}()
	return func() { cancel(); wg.Wait() }
}

func (o *outputReader) run(ctx context.Context) error {
	var f *os.File
	for f == nil {
		var err error
		if f, err = os.Open(o.path); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	have := 0
	for {
		n, err := f.Read(buf[have:])
		if n == 0 {
			if err != nil && err != io.EOF {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if o.countOnly {
			o.counted(int64(bytes.Count(buf[:n], []byte{'\n'})))
			continue
		}
		now := time.Now()
		have += n
		data := buf[:have]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			o.line(data[:i], now)
			data = data[i+1:]
		}
		have = copy(buf, data)
	}
}

func (o *outputReader) line(l []byte, now time.Time) {
	o.counted(1)
	sp := bytes.IndexByte(l, ' ')
	if sp < 0 {
		return
	}
	ts, err := strconv.ParseInt(string(l[:sp]), 10, 64)
	if err != nil {
		return
	}
	if o.seen != nil {
		rest := l[sp+1:]
		if j := bytes.IndexByte(rest, ' '); j > 0 {
			o.mu.Lock()
			if _, ok := o.seen[string(rest[:j])]; !ok {
				o.seen[string(rest[:j])] = now
			}
			o.mu.Unlock()
		}
	}
	if ts < o.from.Load() || ts > o.to.Load() {
		return
	}
	o.mu.Lock()
	o.delays = append(o.delays, now.Sub(time.Unix(0, ts)))
	o.mu.Unlock()
}

func (o *outputReader) percentile(p float64) (time.Duration, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.delays) == 0 {
		return 0, 0
	}
	d := slices.Clone(o.delays)
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))], len(d)
}

func waitLines(o *outputReader, want int64, a shipper, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for o.lines.Load() < want {
		if a.exited() {
			return a.fail()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("output has %d lines after %s, want %d", o.lines.Load(), limit, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := o.lines.Load(); got != want {
		return fmt.Errorf("output has %d lines, want %d", got, want)
	}
	return nil
}

// ---------------------------------------------------------------- steady

// steady runs, for each file count and each cadence, the agent and (with
// -steady-base) tail -F over the same files at the same cadence, in turn
// within each run, so that the ratio of their CPU holds on a machine whose
// load drifts.
func steady() ([]row, error) {
	var rows []row
	var counts []int
	for _, s := range strings.Split(*steadyN, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return rows, fmt.Errorf("-files: bad value %q", s)
		}
		counts = append(counts, n)
	}
	var cadences []time.Duration
	for _, s := range strings.Split(*writeEvery, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return rows, fmt.Errorf("-write-every: bad value %q", s)
		}
		cadences = append(cadences, d)
	}
	for _, n := range counts {
		for _, every := range cadences {
			name := fmt.Sprintf("steady/files=%d/every=%s", n, every)
			var rs, bs []row
			for i := 0; i < *runs; i++ {
				var b row
				if *steadyBase {
					var err error
					if b, err = steadyOnce(n, every, true, i); err != nil {
						return rows, err
					}
					emit(name+"/base=tail-F", b)
					bs = append(bs, b)
				}
				r, err := steadyOnce(n, every, false, i)
				if err != nil {
					return rows, err
				}
				if b.cpu > 0 {
					r.cpuOf = r.cpu / b.cpu
				}
				emit(name, r)
				rs = append(rs, r)
			}
			rows = append(rows, medianBeside(rs, bs)...)
		}
	}
	return rows, nil
}

// steadyOnce writes *rate lines a second over nfiles files, each file
// written once every tick of every (the lines of that tick in one write),
// for a warm-up and then the window, to the agent or, with base, to
// tail -F FILES | cat > out; the sink reads the output and times each line
// from the stamp in it. CPU, context switches and RSS are sampled from
// /proc at the window's edges (every thread; tail and cat summed).
func steadyOnce(nfiles int, every time.Duration, base bool, run int) (row, error) {
	work := filepath.Join(*dir, fmt.Sprintf("steady-%d", nfiles))
	os.RemoveAll(work)
	defer os.RemoveAll(work)
	inDir := filepath.Join(work, "in")
	os.MkdirAll(inDir, 0o755)
	files := make([]*os.File, nfiles)
	var paths []string
	for i := range files {
		path := filepath.Join(inDir, fmt.Sprintf("app-%03d.log", i))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return row{}, err
		}
		defer f.Close()
		files[i] = f
		paths = append(paths, path)
	}
	outFile := filepath.Join(work, "out", "bench.log")
	var sh shipper
	var a *agentProc // nil for the baseline
	name := fmt.Sprintf("logagent steady tail, %d lines/s over %d file(s), each written every %s", *rate, nfiles, every)
	if base {
		name = fmt.Sprintf("`tail -F FILES | cat > out`, %d lines/s over %d file(s), each written every %s", *rate, nfiles, every)
		p, err := startTailF(outFile, paths)
		if err != nil {
			return row{}, err
		}
		defer p.stop()
		sh = p
	} else {
		cfg := agentConfig(work, inDir+"/*.log", outFile, nil, nil, nil)
		var err error
		a, err = startAgent(work, cfg, fmt.Sprintf("steady-%d-%s-run%d", nfiles, every, run), true)
		if err != nil {
			return row{}, err
		}
		defer a.kill()
		sh = a
	}
	o := &outputReader{path: outFile}
	defer o.start()()

	// Write for 2 s of warm-up, then the window, then stop writing.
	warm := 2 * time.Second
	var written int64
	gens := make([]*lineGen, nfiles)
	for i := range gens {
		gens[i] = newLineGen(uint64(i + 1))
	}
	seqs := make([]int64, nfiles)
	bufs := make([][]byte, nfiles)
	start := time.Now()
	var u0, u1 usage
	var maxRSS int64
	var lastRSS time.Time
	tick := time.NewTicker(every)
	defer tick.Stop()
	next := 0
	for {
		<-tick.C
		el := time.Since(start)
		if u0.at.IsZero() && el >= warm {
			if a != nil {
				if err := a.measureWindow(true); err != nil {
					return row{}, err
				}
			}
			u0 = sample(sh)
			o.from.Store(u0.at.UnixNano())
		}
		if el >= warm+*window {
			u1 = sample(sh)
			if a != nil {
				if err := a.measureWindow(false); err != nil {
					return row{}, err
				}
			}
			o.to.Store(u1.at.UnixNano())
			break
		}
		if sh.exited() {
			return row{}, sh.fail()
		}
		// Lines due by now, spread round-robin over the files.
		n := int(float64(*rate)*el.Seconds()) - int(written)
		now := time.Now()
		for k := 0; k < n; k++ {
			i := next
			next = (next + 1) % nfiles
			bufs[i] = stampedLine(bufs[i], now, i, seqs[i], gens[i])
			seqs[i]++
		}
		for i, b := range bufs {
			if len(b) == 0 {
				continue
			}
			if _, err := files[i].Write(b); err != nil {
				return row{}, err
			}
			bufs[i] = b[:0]
		}
		written += int64(n)
		if !u0.at.IsZero() && time.Since(lastRSS) >= 100*time.Millisecond {
			lastRSS = time.Now()
			maxRSS = max(maxRSS, sample(sh).rss)
		}
	}
	err := waitLines(o, written, sh, 30*time.Second)
	peak, serr := stopShipper(sh)
	if err == nil {
		err = serr
	}
	if err != nil {
		return row{}, err
	}
	p99, n := o.percentile(0.99)
	p50, _ := o.percentile(0.50)
	r := windowRow(u0, u1)
	r.name, r.rss, r.p50, r.p99 = name, maxRSS, p50, p99
	r.lines = int64(float64(*rate) * r.wall.Seconds())
	r.extra = fmt.Sprintf("%d lines timed; all %d lines delivered; peak RSS incl. start %.1f MB",
		n, written, float64(peak)/1e6)
	if base {
		r.extra += "; tail and cat summed"
	}
	if a != nil && a.perf != nil {
		a.perf.perLine(&r, r.lines)
	}
	return r, nil
}

// ---------------------------------------------------------------- many files

// emptyAgentRSS runs the agent of work on an empty directory until it has
// started, and returns its resident set: what the many files add is
// measured above it.
func emptyAgentRSS(work string) (int64, error) {
	idle := filepath.Join(work, "idle")
	os.MkdirAll(filepath.Join(idle, "in"), 0o755)
	defer os.RemoveAll(idle)
	out := filepath.Join(idle, "out", "bench.log")
	cfg := agentConfig(idle, filepath.Join(idle, "in")+"/*.log", out, nil, nil, nil)
	a, err := startAgent(idle, cfg, "manyfiles-idle", false)
	if err != nil {
		return 0, err
	}
	defer a.kill()
	// Let it reach its steady state: inputs scanned, output open.
	time.Sleep(time.Second)
	if a.exited() {
		return 0, a.fail()
	}
	cur, _ := a.rss()
	_, err = a.stop()
	return cur, err
}

func manyFiles() ([]row, error) {
	name := fmt.Sprintf("manyfiles/files=%d", *manyN)
	switch {
	case *manyOpen > 0:
		name += fmt.Sprintf("/max-open=%d", *manyOpen)
	case *manyOpen < 0:
		name += "/all-open"
	}
	var rs, bs []row
	for i := 0; i < *runs; i++ {
		var b row
		if *manyBase {
			var err error
			if b, err = manyOnce(i, true); err != nil {
				return nil, err
			}
			emit(fmt.Sprintf("manyfiles/files=%d/base=tail-F", *manyN), b)
			bs = append(bs, b)
		}
		r, err := manyOnce(i, false)
		if err != nil {
			return nil, err
		}
		if b.cpu > 0 {
			r.cpuOf = r.cpu / b.cpu
		}
		emit(name, r)
		rs = append(rs, r)
	}
	return medianBeside(rs, bs), nil
}

// medianBeside returns the rows of the median run by CPU of the agent, rs,
// and of its baseline, bs (none if empty), the agent's CPU over the
// baseline's median: the wall is the window, the same for every run.
func medianBeside(rs, bs []row) []row {
	byCPU := func(a, b row) int { return int((a.cpu - b.cpu) * 1e6) }
	slices.SortFunc(rs, byCPU)
	m := rs[len(rs)/2]
	var rows []row
	if len(bs) > 0 {
		slices.SortFunc(bs, byCPU)
		mb := bs[len(bs)/2]
		if mb.cpu > 0 {
			m.cpuOf = m.cpu / mb.cpu
		}
		rows = append(rows, mb)
	}
	return append(rows, m)
}

// manyOnce runs the agent, or with base tail -F over the same files (less
// the new ones, which tail is not told of), while each file gets a line
// every perFile.
func manyOnce(run int, base bool) (row, error) {
	work := filepath.Join(*dir, "many")
	os.RemoveAll(work)
	defer os.RemoveAll(work)
	inDir := filepath.Join(work, "in")
	os.MkdirAll(inDir, 0o755)
	g := newLineGen(7)
	var line []byte
	nameOf := func(i int) string { return filepath.Join(inDir, fmt.Sprintf("f%05d.log", i)) }
	appendLine := func(i int, seq int64) error {
		f, err := os.OpenFile(nameOf(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		line = stampedLine(line[:0], time.Now(), i, seq, g)
		_, err = f.Write(line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	for i := 0; i < *manyN; i++ {
		if err := appendLine(i, 0); err != nil {
			return row{}, err
		}
	}
	outFile := filepath.Join(work, "out", "bench.log")
	// Default settings: with more files than max_open_files (4096 by
	// default), files are closed and opened again as they grow, and that
	// cost, or starvation, is part of what is measured.
	var input []string
	setting := "default max_open_files"
	switch {
	case *manyOpen > 0:
		input = []string{fmt.Sprintf("max_open_files: %d", *manyOpen)}
	case *manyOpen < 0:
		input = []string{fmt.Sprintf("max_open_files: %d", *manyN+*newFiles+100)}
	}
	if len(input) > 0 {
		setting = input[0]
	}
	var sh shipper
	var a *agentProc // nil for the baseline
	var idleRSS int64
	var started time.Time
	if base {
		paths := make([]string, *manyN)
		for i := range paths {
			paths[i] = nameOf(i)
		}
		p, err := startTailF(outFile, paths)
		if err != nil {
			return row{}, err
		}
		defer p.stop()
		sh, started = p, p.started
	} else {
		cfg := agentConfig(work, inDir+"/*.log", outFile, nil, input, nil)
		var err error
		if idleRSS, err = emptyAgentRSS(work); err != nil {
			return row{}, err
		}
		if a, err = startAgent(work, cfg, fmt.Sprintf("manyfiles-run%d", run), true); err != nil {
			return row{}, err
		}
		defer a.kill()
		sh, started = a, a.started
	}
	window := func(on bool) error {
		if a == nil {
			return nil
		}
		return a.measureWindow(on)
	}
	o := &outputReader{path: outFile, seen: map[string]time.Time{}}
	defer o.start()()
	if err := waitLines(o, int64(*manyN), sh, 5*time.Minute); err != nil {
		return row{}, err
	}
	startup := time.Since(started)
	startCPU := sample(sh).cpu

	// Each file gets a line every perFile, at its own phase, from the
	// end of start-up; the window opens after manySettle and closes
	// manyWindow later. New files appear evenly over the window.
	type event struct {
		at     time.Duration
		file   int
		new    bool
		window bool // opens the window, or (the last event) closes it
	}
	end := *manySettle + *manyWindow
	evs := []event{{at: *manySettle, window: true}}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < *manyN; i++ {
		for t := time.Duration(r.Int64N(int64(*perFile))); t < end; t += *perFile {
			evs = append(evs, event{at: t, file: i})
		}
	}
	for k := 0; k < *newFiles && !base; k++ {
		evs = append(evs, event{at: *manySettle + *manyWindow*time.Duration(k)/time.Duration(*newFiles), file: *manyN + k, new: true})
	}
	slices.SortStableFunc(evs, func(a, b event) int { return int(a.at - b.at) })
	evs = append(evs, event{at: end, window: true})
	start := time.Now()
	var u0 usage // at the window's start
	created := map[string]time.Time{}
	written := int64(*manyN)
	var inWindow int64 // lines written in the window
	var maxRSS int64
	maxOpen := 0
	lastRSS := time.Time{}
	for _, ev := range evs {
		time.Sleep(time.Until(start.Add(ev.at)))
		if ev.window {
			if u0.at.IsZero() {
				if err := window(true); err != nil {
					return row{}, err
				}
				u0 = sample(sh)
				o.from.Store(u0.at.UnixNano())
			}
			continue
		}
		if ev.new {
			created[strconv.Itoa(ev.file)] = time.Now()
		}
		if err := appendLine(ev.file, 1); err != nil {
			return row{}, err
		}
		written++
		if u0.at.IsZero() {
			continue
		}
		inWindow++
		if time.Since(lastRSS) > 500*time.Millisecond {
			lastRSS = time.Now()
			maxRSS = max(maxRSS, sample(sh).rss)
			maxOpen = max(maxOpen, openFilesUnder(sh.pids()[0], inDir))
		}
	}
	u1 := sample(sh)
	open := openFilesUnder(sh.pids()[0], inDir)
	maxOpen = max(maxOpen, open)
	err := window(false)
	o.to.Store(time.Now().UnixNano())
	if err == nil {
		err = waitLines(o, written, sh, time.Minute)
	}
	peak, serr := stopShipper(sh)
	if err == nil {
		err = serr
	}
	if err != nil {
		return row{}, err
	}
	p99, n := o.percentile(0.99)
	res := windowRow(u0, u1)
	res.rss, res.p99 = maxRSS, p99
	if base {
		res.name = fmt.Sprintf("`tail -F FILES | cat > out`, the same %d files, a line each per %s", *manyN, *perFile)
		res.more = []metric{{float64(maxOpen), "open-files"}, {float64(peak) / 1e6, "peak-incl-start-MB"}}
		res.extra = fmt.Sprintf("tail and cat summed; %d files open; peak RSS incl. start-up %.1f MB; no new files (tail is given its files at start); %d lines timed; all %d lines delivered; start-up (all %d files read) %.1f s, %.2f CPU s",
			open, float64(peak)/1e6, n, written, *manyN, startup.Seconds(), startCPU.Seconds())
		return res, nil
	}
	var pick []time.Duration
	o.mu.Lock()
	for k, c := range created {
		if s, ok := o.seen[k]; ok {
			pick = append(pick, s.Sub(c))
		}
	}
	o.mu.Unlock()
	slices.Sort(pick)
	var pickS []string
	for _, p := range pick {
		pickS = append(pickS, fmt.Sprintf("%.0f", float64(p)/1e6))
	}
	var pickMax time.Duration
	if len(pick) > 0 {
		pickMax = pick[len(pick)-1]
	}
	var perOpen metric // KB of RSS above an idle agent's, per open input file
	perOpenS := "—"
	if maxOpen > 0 {
		perOpen = metric{float64(maxRSS-idleRSS) / float64(maxOpen) / 1e3, "rss-kB/open-file"}
		perOpenS = fmt.Sprintf("%.1f kB", perOpen.v)
	}
	res.name = fmt.Sprintf("logagent many files: %d files, a line each per %s", *manyN, *perFile)
	res.pickup = pickMax
	res.more = []metric{perOpen, {float64(maxOpen), "open-files"}, {float64(pickMax) / 1e6, "pickup-max-ms"}, {float64(peak) / 1e6, "peak-incl-start-MB"}}
	res.extra = fmt.Sprintf("RSS per open file %s (%.1f MB above an idle agent's %.1f MB, over %d input files open at most, %d at the end; %s); peak RSS incl. start-up %.1f MB; new file picked up in %s ms; %d lines timed; all %d lines delivered; start-up (all %d files read) %.1f s, %.2f CPU s; %s settle, %.2f CPU s",
		perOpenS, float64(maxRSS-idleRSS)/1e6, float64(idleRSS)/1e6, maxOpen, open, setting, float64(peak)/1e6, strings.Join(pickS, "/"), n, written, *manyN, startup.Seconds(), startCPU.Seconds(), *manySettle, (u0.cpu - startCPU).Seconds())
	if a.perf != nil {
		a.perf.perLine(&res, inWindow)
	}
	return res, nil
}
