package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// ---------------------------------------------------------------- linear
//
// The target: cost grows linearly. Throughput per line stays flat from 1 to
// 1,000 files and from 100 B to 10 KB lines (MB/s rises with line size);
// memory is bounded by configuration, not by input size or by how long an
// output is down.

// linearCase is one input: files files of lines of size bytes each.
type linearCase struct {
	files, size int
}

func (c linearCase) bench() string {
	return fmt.Sprintf("files=%d/line=%s", c.files, sizeLabel(c.size))
}

func (c linearCase) title() string {
	return fmt.Sprintf("logagent backfill, %d file(s) × %s lines", c.files, sizeLabel(c.size))
}

func sizeLabel(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dKB", n/1000)
	}
	return fmt.Sprintf("%dB", n)
}

func intList(flagName, s string, minV int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < minV {
			return nil, fmt.Errorf("-%s: bad value %q (want an integer >= %d)", flagName, f, minV)
		}
		out = append(out, n)
	}
	return out, nil
}

func linear() ([]row, error) {
	fileCounts, err := intList("linear-files", *linFiles, 1)
	if err != nil {
		return nil, err
	}
	sizes, err := intList("linear-sizes", *linSizes, 32)
	if err != nil {
		return nil, err
	}
	if *linLine < 32 {
		return nil, fmt.Errorf("-linear-line: %d is below 32 bytes", *linLine)
	}
	var cases []linearCase
	for _, n := range fileCounts {
		cases = append(cases, linearCase{n, *linLine})
	}
	for _, sz := range sizes {
		if c := (linearCase{1, sz}); !slices.Contains(cases, c) {
			cases = append(cases, c)
		}
	}
	total := int64(*linearMB) * 1e6
	sums := make([]inputSum, len(cases))
	dirs := make([]string, len(cases))
	for k, c := range cases {
		dirs[k] = filepath.Join(*dir, "linear", fmt.Sprintf("in-f%d-l%d-%dMB", c.files, c.size, *linearMB))
		if sums[k], err = ensureLinearInput(dirs[k], c, total); err != nil {
			return nil, err
		}
	}
	fmt.Printf("linear: %d MB per case, %d cases, %d runs\n", *linearMB, len(cases), *runs)
	agentRuns := make([][]row, len(cases))
	baseRuns := make([][]row, len(cases))
	for i := 0; i < *runs; i++ {
		for k, c := range cases {
			glob := filepath.Join(dirs[k], "*.log")
			// Warm the page cache: every contender reads from memory.
			if _, err := measure(exec.Command("sh", "-c", "cat "+glob+" > /dev/null"), nil); err != nil {
				return nil, err
			}
			outDir := filepath.Join(*dir, "linear", "out")
			os.MkdirAll(outDir, 0o755)
			tailOut := filepath.Join(outDir, "tail.out")
			b, err := measure(exec.Command("sh", "-c", "tail -q -c +1 "+glob+" | cat > "+tailOut), nil)
			os.Remove(tailOut)
			if err != nil {
				return nil, err
			}
			b.bytes, b.lines, b.ratio = sums[k].size, sums[k].lines, 1
			emit("linear/"+c.bench()+"/base=tail-cat", b)
			baseRuns[k] = append(baseRuns[k], b)

			r, err := linearAgent(dirs[k], c, sums[k], i)
			if err != nil {
				return nil, err
			}
			r.ratio = b.wall.Seconds() / r.active().Seconds()
			emit("linear/"+c.bench(), r)
			r.ratio = 0 // the table's is of the medians
			agentRuns[k] = append(agentRuns[k], r)
		}
	}
	var rows []row
	var ref row // 1 file of -linear-line: what the other file counts compare with
	for k, c := range cases {
		m := median(slices.Clone(agentRuns[k]))
		b := median(slices.Clone(baseRuns[k]))
		m.ratio = b.wall.Seconds() / m.active().Seconds()
		m.extra = fmt.Sprintf("tail\\|cat %.2f s, %.0f MB/s; first byte %.0f ms; output idle %.0f ms, waiting out flush_interval (left out of the rates); output verified",
			b.wall.Seconds(), float64(b.bytes)/b.wall.Seconds()/1e6, float64(m.first)/1e6, float64(m.idle)/1e6)
		if m.idle == 0 {
			m.extra = fmt.Sprintf("tail\\|cat %.2f s, %.0f MB/s; first byte %.0f ms; output verified",
				b.wall.Seconds(), float64(b.bytes)/b.wall.Seconds()/1e6, float64(m.first)/1e6)
		}
		if c == (linearCase{1, *linLine}) {
			ref = m
		} else if c.size == *linLine && ref.cpu > 0 {
			m.extra += fmt.Sprintf("; CPU/line ×%.2f, RSS ×%.2f of 1 file", perLine(m)/perLine(ref), float64(m.rss)/float64(ref.rss))
		}
		if len(agentRuns[k]) > 1 {
			var walls []string
			for _, r := range agentRuns[k] {
				walls = append(walls, fmt.Sprintf("%.2f", r.wall.Seconds()))
			}
			m.extra += "; walls " + strings.Join(walls, "/")
		}
		rows = append(rows, m)
	}
	if *outage <= 0 {
		return rows, nil
	}
	// The output held down, on the input of the 1-file row at -linear-line.
	k := slices.Index(cases, linearCase{1, *linLine})
	if k < 0 {
		cases = append(cases, linearCase{1, *linLine})
		dirs = append(dirs, filepath.Join(*dir, "linear", fmt.Sprintf("in-f1-l%d-%dMB", *linLine, *linearMB)))
		s, err := ensureLinearInput(dirs[len(dirs)-1], cases[len(cases)-1], total)
		if err != nil {
			return rows, err
		}
		sums = append(sums, s)
		k = len(cases) - 1
	}
	for _, infl := range strings.Split(*outageInfl, ",") {
		if infl = strings.TrimSpace(infl); infl == "" {
			continue
		}
		var rs []row
		for i := 0; i < *runs; i++ {
			r, err := outageOnce(filepath.Join(dirs[k], "f0000.log"), sums[k], infl, ref.rss, i)
			if err != nil {
				return rows, err
			}
			emit("linear/outage/inflight="+infl, r)
			rs = append(rs, r)
		}
		rows = append(rows, median(rs))
	}
	return rows, nil
}

func perLine(r row) float64 { return r.cpu / float64(r.lines) }

// ensureLinearInput generates c's files in dir, about total bytes in all,
// unless they are there with a summary beside them. Each line is
//
//	FILE SEQ nginx-style text...\n
//
// exactly c.size bytes long: the file number lets the output, where the
// files' lines interleave, be split back into files and checked.
func ensureLinearInput(dir string, c linearCase, total int64) (inputSum, error) {
	perFile := max(1, total/int64(c.size)/int64(c.files))
	sumPath := filepath.Join(dir, "sum")
	if data, err := os.ReadFile(sumPath); err == nil {
		var s inputSum
		if _, err := fmt.Sscan(string(data), &s.lines, &s.size, &s.sum); err == nil &&
			s.lines == perFile*int64(c.files) && s.size == s.lines*int64(c.size) {
			m, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			if len(m) == c.files {
				return s, nil
			}
		}
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return inputSum{}, err
	}
	fmt.Printf("generating %s (%d file(s) × %d lines of %d bytes)...\n", dir, c.files, perFile, c.size)
	g := newLineGen(uint64(c.size))
	digests := sha256.New()
	var line []byte
	buf := make([]byte, 0, 1<<20)
	for f := 0; f < c.files; f++ {
		out, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%04d.log", f)))
		if err != nil {
			return inputSum{}, err
		}
		h := sha256.New()
		w := io.MultiWriter(out, h)
		for seq := int64(0); seq < perFile; seq++ {
			line = linearLine(line[:0], f, seq, c.size, g)
			buf = append(buf, line...)
			if len(buf) >= 1<<20-c.size || seq == perFile-1 {
				if _, err := w.Write(buf); err != nil {
					out.Close()
					return inputSum{}, err
				}
				buf = buf[:0]
			}
		}
		if err := out.Close(); err != nil {
			return inputSum{}, err
		}
		digests.Write(h.Sum(nil))
	}
	s := inputSum{lines: perFile * int64(c.files), size: perFile * int64(c.files) * int64(c.size), sum: hex.EncodeToString(digests.Sum(nil))}
	return s, os.WriteFile(sumPath, fmt.Appendf(nil, "%d %d %s\n", s.lines, s.size, s.sum), 0o644)
}

// linearLine appends line seq of file: its numbers, then nginx text cut or
// repeated to size bytes with the newline.
func linearLine(b []byte, file int, seq int64, size int, g *lineGen) []byte {
	start := len(b)
	b = strconv.AppendInt(b, int64(file), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	for len(b)-start < size-1 {
		b = g.nginx(b, seq)
		b = append(b, ' ')
	}
	b = b[:start+size-1]
	return append(b, '\n')
}

// summarizeLinear splits the lines of path by the file number they start
// with and summarizes them as ensureLinearInput summarized the input: each
// file's lines must come in the order they were written, every one once.
func summarizeLinear(path string, files int) (inputSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return inputSum{}, err
	}
	defer f.Close()
	hs := make([]hash.Hash, files)
	for i := range hs {
		hs[i] = sha256.New()
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var s inputSum
	for {
		l, err := r.ReadSlice('\n')
		if err == io.EOF && len(l) == 0 {
			break
		}
		if err != nil {
			return inputSum{}, fmt.Errorf("%s: line %d: %w", path, s.lines+1, err)
		}
		n, i := 0, 0
		for ; i < len(l) && l[i] >= '0' && l[i] <= '9'; i++ {
			n = n*10 + int(l[i]-'0')
		}
		if i == 0 || i == len(l) || l[i] != ' ' || n >= files {
			return inputSum{}, fmt.Errorf("%s: line %d does not start with a file number below %d: %.60q", path, s.lines+1, files, l)
		}
		hs[n].Write(l)
		s.lines++
		s.size += int64(len(l))
	}
	all := sha256.New()
	for _, h := range hs {
		all.Write(h.Sum(nil))
	}
	s.sum = hex.EncodeToString(all.Sum(nil))
	return s, nil
}

// linearAgent backfills inDir to a file output once, as backfillAgent does.
func linearAgent(inDir string, c linearCase, sum inputSum, run int) (row, error) {
	work := filepath.Join(*dir, "linear", "agent")
	os.RemoveAll(work)
	defer os.RemoveAll(work)
	outFile := filepath.Join(work, "out", "bench.log")
	cfg := agentConfig(work, inDir+"/*.log", outFile, []string{"shutdown_timeout: 60s"}, nil, nil)
	a, err := startAgent(work, cfg, fmt.Sprintf("linear-f%d-l%d-run%d", c.files, c.size, run), false)
	if err != nil {
		return row{}, err
	}
	tr, err := waitSizeTrace(outFile, sum.size, a, 10*time.Minute)
	wall := time.Since(a.started)
	// CPU and peak RSS of the job, sampled before the agent is stopped.
	u := sample(a)
	_, serr := a.stop()
	if err != nil {
		return row{}, err
	}
	if serr != nil {
		return row{}, serr
	}
	got, err := summarizeLinear(outFile, c.files)
	if err != nil {
		return row{}, err
	}
	if got != sum {
		return row{}, fmt.Errorf("%s: output differs from input: %d lines, %d bytes, sum %s; want %d lines, %d bytes, sum %s",
			c.bench(), got.lines, got.size, got.sum, sum.lines, sum.size, sum.sum)
	}
	return row{
		name:  c.title(),
		wall:  wall,
		idle:  tr.idle,
		first: tr.first,
		cpu:   u.cpu.Seconds(),
		bytes: sum.size,
		rss:   u.peak,
		lines: sum.lines,
		more: []metric{
			{float64(tr.first.Nanoseconds()) / 1e6, "first-byte-ms"},
			{float64(tr.idle.Nanoseconds()) / 1e6, "idle-ms"},
		},
	}, nil
}

// flushWait is the shortest pause of the output's growth taken for a batch
// that is not full waiting out flush_interval (200 ms) rather than for
// work: only such pauses are left out of the rates. Polled every
// millisecond, a busy agent never pauses this long.
const flushWait = 150 * time.Millisecond

// sizeTrace is how an output file grew to its size: when its first byte
// came, from the agent's start, and how long in all it then sat still in
// pauses of flushWait or more (the last batch, not full, waits out
// flush_interval).
type sizeTrace struct {
	first, idle time.Duration
}

// waitSizeTrace is waitSize, tracing the growth of path.
func waitSizeTrace(path string, size int64, a *agentProc, limit time.Duration) (sizeTrace, error) {
	var tr sizeTrace
	deadline := time.Now().Add(limit)
	var last int64
	var changed time.Time // when the size last changed
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() != last {
			now := time.Now()
			if last == 0 {
				tr.first = now.Sub(a.started)
			} else if d := now.Sub(changed); d >= flushWait {
				tr.idle += d
			}
			if fi.Size() == size {
				return tr, nil
			}
			if fi.Size() > size {
				return tr, fmt.Errorf("%s: %d bytes, more than the %d of the input", path, fi.Size(), size)
			}
			last, changed = fi.Size(), now
		}
		if a.exited() {
			return tr, fmt.Errorf("agent exited early: %v%s", a.err, a.stderr())
		}
		if time.Now().After(deadline) {
			return tr, fmt.Errorf("%s: not %d bytes after %s", path, size, limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// outageLimit is the file size the agent may write while its output is
// down: room for its checkpoint, a little output, nothing more.
const outageLimit = 64 << 10

// outageOnce starts the agent on an empty file with a file output and
// holds the output down by lowering the agent's RLIMIT_FSIZE (chmod does
// not stop root; EFBIG does, and Go ignores SIGXFSZ). It then appends src
// to the input, keeps the output down for -outage, lifts the limit, and
// waits until every line is delivered. normalRSS is the peak of the
// normal run on the same input.
func outageOnce(src string, sum inputSum, inflight string, normalRSS int64, run int) (row, error) {
	work := filepath.Join(*dir, "linear", "outage")
	os.RemoveAll(work)
	defer os.RemoveAll(work)
	inFile := filepath.Join(work, "in", "f0000.log")
	os.MkdirAll(filepath.Dir(inFile), 0o755)
	if err := os.WriteFile(inFile, nil, 0o644); err != nil {
		return row{}, err
	}
	outFile := filepath.Join(work, "out", "bench.log")
	cfg := agentConfig(work, inFile, outFile, []string{"shutdown_timeout: 60s", "max_inflight_bytes: " + inflight},
		nil, []string{"min_backoff: 50ms", "max_backoff: 500ms"})
	a, err := startAgent(work, cfg, fmt.Sprintf("linear-outage-%s-run%d", inflight, run), false)
	if err != nil {
		return row{}, err
	}
	defer a.kill()
	pid := a.cmd.Process.Pid
	// The input is empty: nothing is written to the output before this.
	if err := setFsize(pid, outageLimit); err != nil {
		return row{}, fmt.Errorf("prlimit RLIMIT_FSIZE: %w", err)
	}
	rchar0 := readChars(pid)

	t0 := time.Now()
	if err := appendFile(inFile, src); err != nil {
		return row{}, err
	}
	writeTook := time.Since(t0)
	var downRSS int64 // largest VmRSS seen while down
	for time.Since(t0) < *outage {
		if a.exited() {
			return row{}, fmt.Errorf("agent exited while its output was down: %v%s", a.err, a.stderr())
		}
		if cur, _ := a.rss(); cur > downRSS {
			downRSS = cur
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, downHWM := a.rss()
	readDown := readChars(pid) - rchar0
	var heldDown int64
	if fi, err := os.Stat(outFile); err == nil {
		heldDown = fi.Size()
	}
	if heldDown >= sum.size {
		return row{}, errors.New("the output was not held down: it holds every byte already")
	}
	if !strings.Contains(a.stderr(), "file too large") {
		return row{}, fmt.Errorf("the output was not held down by EFBIG (file too large); agent log:%s", a.stderr())
	}
	if err := setFsize(pid, ^uint64(0)); err != nil {
		return row{}, fmt.Errorf("prlimit RLIMIT_FSIZE: %w", err)
	}
	lifted := time.Now()
	err = waitSize(outFile, sum.size, a, 10*time.Minute)
	recovery := time.Since(lifted)
	ru, serr := a.stop()
	if err != nil {
		return row{}, err
	}
	if serr != nil {
		return row{}, serr
	}
	got, err := summarizeLinear(outFile, 1)
	if err != nil {
		return row{}, err
	}
	if got != sum {
		return row{}, fmt.Errorf("outage: output differs from input: %d lines, %d bytes, sum %s; want %d lines, %d bytes, sum %s",
			got.lines, got.size, got.sum, sum.lines, sum.size, sum.sum)
	}
	peak := a.peak
	verdict := ""
	if downHWM > sum.size/2 {
		verdict = " — GROWS WITH THE INPUT"
	}
	extra := fmt.Sprintf("output down %s (RLIMIT_FSIZE %d KiB) while %.0f MB were appended in %.2f s: "+
		"agent read %.0f MB while down, output held %.0f KB; peak RSS while down %.1f MB = normal run (32MiB) %.1f MB %+.1f MB%s; "+
		"limit lifted: all %d lines delivered in %.2f s (wall), output verified",
		*outage, outageLimit>>10, float64(sum.size)/1e6, writeTook.Seconds(),
		float64(readDown)/1e6, float64(heldDown)/1e3, float64(downHWM)/1e6, float64(normalRSS)/1e6, float64(downHWM-normalRSS)/1e6, verdict,
		sum.lines, recovery.Seconds())
	return row{
		name:  fmt.Sprintf("logagent, file output down %s, max_inflight_bytes %s", *outage, inflight),
		wall:  recovery,
		cpu:   cpuSeconds(ru),
		bytes: sum.size,
		rss:   peak,
		lines: sum.lines,
		extra: extra,
		more: []metric{
			{float64(downHWM) / 1e6, "down-peak-MB"},
			{float64(readDown) / 1e6, "down-read-MB"},
		},
	}, nil
}

// setFsize sets the soft RLIMIT_FSIZE of process pid to n bytes, leaving
// the hard limit alone, so that raising it again needs no privilege.
func setFsize(pid int, n uint64) error {
	var old syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, 0, uintptr(unsafe.Pointer(&old)), 0, 0); e != 0 {
		return e
	}
	lim := syscall.Rlimit{Cur: min(n, old.Max), Max: old.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// readChars returns the bytes process pid has read (rchar of /proc/PID/io).
func readChars(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// appendFile appends src to dst in 1 MiB writes.
func appendFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, make([]byte, 1<<20)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// waitSize polls path until it holds size bytes.
func waitSize(path string, size int64, a *agentProc, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if fi, err := os.Stat(path); err == nil {
			if fi.Size() == size {
				return nil
			}
			if fi.Size() > size {
				return fmt.Errorf("%s: %d bytes, more than the %d of the input", path, fi.Size(), size)
			}
		}
		if a.exited() {
			return fmt.Errorf("agent exited early: %v%s", a.err, a.stderr())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %d bytes after %s", path, size, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
