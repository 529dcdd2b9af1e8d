package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/internal/testenv"
)

// journalRemote is Debian's systemd-journal-remote, which writes a journal
// file from the export format on its stdin.
const journalRemote = "/lib/systemd/systemd-journal-remote"

// writeJournal writes to file a journal of the entries [from, to) of unit
// test.service at priority info, each followed by one the input's filters
// drop (a debug entry, and one of another unit).
func writeJournal(t *testing.T, file string, from, to int) {
	t.Helper()
	var b bytes.Buffer
	for i := from; i < to; i++ {
		ts := 1700000000000000 + int64(i)*10
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=jhost\n", ts, ts)
		fmt.Fprintf(&b, "_SYSTEMD_UNIT=test.service\nPRIORITY=6\n_PID=%d\nMESSAGE=j %d\n\n", 100+i%7, i)
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n", ts+1, ts+1)
		fmt.Fprintf(&b, "_SYSTEMD_UNIT=test.service\nPRIORITY=7\nMESSAGE=debug %d\n\n", i)
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n", ts+2, ts+2)
		fmt.Fprintf(&b, "_SYSTEMD_UNIT=other.service\nPRIORITY=3\nMESSAGE=other %d\n\n", i)
	}
	cmd := exec.Command(journalRemote, "-o", file, "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", journalRemote, err, out)
	}
}

// journalOutput counts, per entry number, the messages "j N" in the JSON
// lines of the output, and checks each one's fields.
func journalOutput(t *testing.T, glob string) (map[int]int, int) {
	t.Helper()
	files, _ := filepath.Glob(glob)
	seen, lines := map[int]int{}, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m struct {
				Timestamp time.Time         `json:"@timestamp"`
				Message   string            `json:"message"`
				Fields    map[string]string `json:"fields"`
			}
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				continue // a line being written
			}
			var n int
			if strings.HasPrefix(m.Message, "debug ") && m.Fields["priority"] == "7" {
				continue // read once the reload below allows debug
			}
			if _, err := fmt.Sscanf(m.Message, "j %d", &n); err != nil {
				t.Fatalf("unexpected message %q (the filters should have dropped it)", m.Message)
			}
			if m.Fields["unit"] != "test.service" || m.Fields["priority"] != "6" || m.Fields["pid"] != fmt.Sprint(100+n%7) ||
				m.Fields["hostname"] != "jhost" || m.Fields["boot_id"] != "0123456789abcdef0123456789abcdef" {
				t.Fatalf("message %q has fields %v", m.Message, m.Fields)
			}
			if want := time.UnixMicro(1700000000000000 + int64(n)*10); !m.Timestamp.Equal(want) {
				t.Fatalf("message %q has @timestamp %v, want %v (its __REALTIME_TIMESTAMP)", m.Message, m.Timestamp, want)
			}
			seen[n]++
			lines++
		}
	}
	return seen, lines
}

// Issue 18: the journald input. Every entry arrives with its metadata;
// after a kill -9 the input resumes after the cursor checkpointed once
// every output had the entry: nothing is lost, and what is sent again is
// at most what was delivered past that cursor; entries appended to the
// journal later are followed.
func TestJournald(t *testing.T) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("no journalctl")
	}
	if _, err := os.Stat(journalRemote); err != nil {
		t.Skip("no systemd-journal-remote (Debian package systemd-journal-remote)")
	}
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	os.Mkdir(jdir, 0o755)
	const n1, n2 = 20000, 25000
	writeJournal(t, filepath.Join(jdir, "a.journal"), 0, n1)

	data := filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`data_dir: %q
checkpoint_interval: 50ms
shutdown_timeout: 20s
inputs:
  - id: journal
    type: journald
    journal_directory: %q
    current_boot_only: false
    units: [test.service]
    priority: info
outputs:
  - id: out
    type: file
    path: %q
    format: json
`, data, jdir, filepath.Join(dir, "out", "{category}.log"))
	cfgPath := filepath.Join(dir, "logagent.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &testenv.Agent{Bin: testenv.Binary(t), ConfigPath: cfgPath, LogPath: filepath.Join(dir, "agent.log")}
	glob := filepath.Join(dir, "out", "*.log")

	// While the output fails (its directory is a file), entries are read
	// but the cursor must not move: killed then, nothing is lost.
	blocker := filepath.Join(dir, "out")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(time.Minute)
	if !testenv.WaitUntil(2*time.Minute, func() bool { return a.LogCount("send failed") >= 1 }) {
		t.Fatalf("the output did not fail; log:\n%s", a.Log())
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := checkpoint.Load(filepath.Join(data, checkpoint.FileName)); len(entries) > 0 {
		t.Fatalf("cursor committed while the output failed: %+v", entries)
	}
	os.Remove(blocker)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}

	// Kill -9 once a cursor is committed and some, not necessarily all,
	// entries are delivered.
	if !testenv.WaitUntil(2*time.Minute, func() bool {
		entries, _ := checkpoint.Load(filepath.Join(data, checkpoint.FileName))
		return len(entries) > 0
	}) {
		t.Fatalf("nothing delivered; log:\n%s", a.Log())
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	_, before := journalOutput(t, glob)
	var committed int64
	entries, err := checkpoint.Load(filepath.Join(data, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Input == "journal" {
			committed = e.Offset
			if !strings.HasPrefix(e.Cursor, "s=") {
				t.Fatalf("checkpoint entry %+v: no cursor", e)
			}
		}
	}
	t.Logf("killed with %d delivered, %d committed", before, committed)

	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	all := func(n int) bool {
		seen, _ := journalOutput(t, glob)
		for i := 0; i < n; i++ {
			if seen[i] == 0 {
				return false
			}
		}
		return true
	}
	if !testenv.WaitUntil(2*time.Minute, func() bool { return all(n1) }) {
		t.Fatalf("entries missing after the restart; log:\n%s", a.Log())
	}
	// Appended while the input follows.
	writeJournal(t, filepath.Join(jdir, "b.journal"), n1, n2)
	if !testenv.WaitUntil(2*time.Minute, func() bool { return all(n2) }) {
		t.Fatalf("entries appended later missing; log:\n%s", a.Log())
	}
	seen, lines := journalOutput(t, glob)
	reloadJournald(t, a, cfgPath, cfg, jdir, glob, n2)
	dups := lines - n2
	for i, c := range seen {
		if i >= before && c > 1 {
			t.Fatalf("entry %d delivered %d times, though it was not delivered before the kill", i, c)
		}
	}
	if max := before - int(committed); dups > max {
		t.Fatalf("%d duplicates; at most %d (delivered %d - committed %d) expected", dups, max, before, committed)
	}
	t.Logf("%d entries, %d duplicates", n2, dups)
	if err := a.Stop(time.Minute); err != nil {
		t.Fatalf("stop: %v; log:\n%s", err, a.Log())
	}
}

// journalctls returns the pids of the journalctl children of pid.
func journalctls(pid int) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(journalctl") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// reloadJournald changes the input's priority to debug and reloads: the
// journalctl running is stopped and a new one follows from the committed
// cursor, so that old entries are not read again, and the debug entries
// after that cursor (the last one of before, and those appended) arrive.
func reloadJournald(t *testing.T, a *testenv.Agent, cfgPath, cfg, jdir, glob string, n int) {
	t.Helper()
	old := journalctls(a.PID())
	if len(old) != 1 {
		t.Fatalf("journalctl children of the agent: %v, want one", old)
	}
	cfg = strings.Replace(cfg, "priority: info", "priority: debug", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(a.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitUntil(2*time.Minute, func() bool { return a.LogCount("reload: applied") == 1 }) {
		t.Fatalf("not reloaded; log:\n%s", a.Log())
	}
	// The old journalctl is stopped before the reload is applied; the new
	// input starts its own as it runs, which may be after that.
	var now []int
	if !testenv.WaitUntil(2*time.Minute, func() bool {
		now = journalctls(a.PID())
		return len(now) == 1 && now[0] != old[0]
	}) {
		t.Fatalf("journalctl pids before the reload %v, after %v", old, now)
	}
	if err := syscall.Kill(old[0], 0); err != syscall.ESRCH {
		t.Fatalf("the old journalctl (pid %d) still runs: %v", old[0], err)
	}
	writeJournal(t, filepath.Join(jdir, "c.journal"), n, n+10)
	debug := func() int {
		c := 0
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			data, _ := os.ReadFile(f)
			c += strings.Count(string(data), `"message":"debug `)
		}
		return c
	}
	// The debug entry after the last one delivered, then the 10 appended.
	if !testenv.WaitUntil(2*time.Minute, func() bool { return debug() >= 11 }) || debug() != 11 {
		t.Fatalf("%d debug entries after the reload, want 11; log:\n%s", debug(), a.Log())
	}
	seen, _ := journalOutput(t, glob)
	for i := n; i < n+10; i++ {
		if seen[i] != 1 {
			t.Fatalf("entry %d delivered %d times after the reload", i, seen[i])
		}
	}
}
