package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/logagent/logagent/internal/testenv"
	scribegen "github.com/logagent/logagent/internal/thriftgen/scribe"
	"github.com/logagent/logagent/internal/thrifttest"
)

// runAgent runs the agent on the configuration text cfgText (written to
// dir/logagent.yaml) and returns it with a function that stops it.
func runAgent(t *testing.T, dir, cfgText string) (*Agent, func()) {
	t.Helper()
	path := filepath.Join(dir, "logagent.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	// Reload needs Run to have started.
	testenv.WaitUntil(hang, func() bool {
		a.life.Lock()
		defer a.life.Unlock()
		return a.runCtx != nil
	})
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent stopped with: %v", err)
		}
	}
	t.Cleanup(stop)
	return a, stop
}

// seqLines returns lines "tag seq=N payload" for N in [from, to).
func seqLines(tag string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s seq=%07d %s\n", tag, i, strings.Repeat("x", 80))
	}
	return b.String()
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func (a *Agent) inputStatus(id string) InputStatus {
	for _, is := range a.Status().Inputs {
		if is.ID == id {
			return is
		}
	}
	return InputStatus{}
}

// TestDeadOutputStopsOnlyItsInputs: input a goes to a healthy file output,
// input b to the same file output and to a Scribe output whose server is
// down. b's lines fill more than max_inflight_bytes, and b waits, as it
// must to commit its offsets; a's lines must still arrive while the server
// is down, through the output b shares, and b's once it is back, none
// lost.
func TestDeadOutputStopsOnlyItsInputs(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	sink := &scribeSink{}
	srv := thrifttest.Start(t, scribegen.NewScribeProcessor(sink), false)
	srv.Stop() // down from the start

	const linesB = 40000 // 4 MB: four times max_inflight_bytes
	appendFile(t, filepath.Join(logs, "b.log"), seqLines("b", 0, linesB))
	a, stop := runAgent(t, dir, fmt.Sprintf(`data_dir: %[1]s/state
shutdown_timeout: 5s
max_inflight_bytes: 1MiB
inputs:
  - {id: a, paths: ["%[1]s/logs/a.log"], outputs: [file]}
  - {id: b, paths: ["%[1]s/logs/b.log"], outputs: [file, scribe]}
outputs:
  - {id: file, type: file, path: "%[1]s/out/{category}.log", min_backoff: 10ms}
  - {id: scribe, type: scribe, hosts: ["%[2]s"], timeout: 1m, min_backoff: 10ms, max_backoff: 200ms}
`, dir, srv.Addr()))

	// b waits for scribe, with its share of max_inflight_bytes full.
	if !testenv.WaitUntil(hang, func() bool {
		return slices.Equal(a.inputStatus("b").WaitingFor, []string{"scribe"})
	}) {
		t.Fatalf("input b does not wait for scribe: %+v", a.inputStatus("b"))
	}

	// While b waits, its numbers tell how far behind its file is now,
	// not at its last read, and the metrics name what it waits for.
	appendFile(t, filepath.Join(logs, "b.log"), seqLines("b", linesB, linesB+1000))
	fi, err := os.Stat(filepath.Join(logs, "b.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !testenv.WaitUntil(hang, func() bool { return a.inputStatus("b").BytesBehind == fi.Size() }) {
		t.Errorf("input b is %d bytes behind, its file holds %d undelivered", a.inputStatus("b").BytesBehind, fi.Size())
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`logagent_input_waiting_seconds{input="b",output="scribe"}`,
		`logagent_input_bytes_behind{input="b"} ` + strconv.FormatFloat(float64(fi.Size()), 'g', -1, 64),
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(rec.Body.String(), "input_"))
		}
	}
	if strings.Contains(rec.Body.String(), `logagent_input_waiting_seconds{input="a"`) {
		t.Errorf("/metrics says input a waits")
	}

	const linesA = 5000
	appendFile(t, filepath.Join(logs, "a.log"), seqLines("a", 0, linesA))
	outA := filepath.Join(dir, "out", "a.log")
	if !testenv.WaitUntil(hang, func() bool { return countLines(outA) >= linesA }) {
		t.Fatalf("input a's lines did not arrive while scribe was down: %d of %d; a: %+v", countLines(outA), linesA, a.inputStatus("a"))
	}
	if st := a.inputStatus("a"); len(st.WaitingFor) != 0 {
		t.Errorf("input a waits for %v", st.WaitingFor)
	}
	if n := sink.lines.distinct(); n != 0 {
		t.Fatalf("scribe got %d lines while down", n)
	}

	srv.Restart()
	want := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(seqLines("b", 0, linesB+1000), "\n"), "\n") {
		want[l] = true
	}
	sink.lines.check(t, want)
	outB := filepath.Join(dir, "out", "b.log")
	if !testenv.WaitUntil(hang, func() bool { return countLines(outB) >= linesB+1000 }) {
		t.Errorf("the file output has %d of b's %d lines", countLines(outB), linesB+1000)
	}
	stop()
	data, _ := os.ReadFile(outA)
	got := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		got[l] = true
	}
	for i := range linesA {
		if l := strings.TrimSuffix(seqLines("a", i, i+1), "\n"); !got[l] {
			t.Fatalf("line %q lost", l)
		}
	}
}

func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReloadKeepsWhatDidNotChange: a reload keeps the very inputs, relays
// and outputs whose settings did not change, and replaces the others
// (a relay's listener included).
func TestReloadKeepsWhatDidNotChange(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	text := fmt.Sprintf(`data_dir: %[1]s/state
shutdown_timeout: 5s
inputs:
  - {id: a, paths: ["%[1]s/logs/a.log"], outputs: [o]}
  - {id: b, paths: ["%[1]s/logs/b.log"], outputs: [p]}
  - {id: r, type: scribe, listen: "127.0.0.1:0", outputs: [o]}
  - {id: s, type: scribe, listen: "127.0.0.1:0", outputs: [p]}
outputs:
  - {id: o, type: file, path: "%[1]s/out/{category}.log"}
  - {id: p, type: file, path: "%[1]s/out2/{category}.log"}
`, dir)
	a, _ := runAgent(t, dir, text)
	_, inputs0, runners0 := a.running()
	relays0 := a.runningRelays()

	path := filepath.Join(dir, "logagent.yaml")
	os.WriteFile(path, []byte(strings.Replace(text, "out2/", "out3/", 1)), 0o644)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	_, inputs1, runners1 := a.running()
	relays1 := a.runningRelays()
	if inputs1[0] != inputs0[0] || relays1[0] != relays0[0] || runners1[0] != runners0[0] {
		t.Error("input a, relay r or output o, unchanged, was replaced")
	}
	if inputs1[1] == inputs0[1] || relays1[1] == relays0[1] || runners1[1] == runners0[1] {
		t.Error("input b, relay s or output p, routed to or being the changed output, was kept")
	}
	appendFile(t, filepath.Join(dir, "logs", "b.log"), seqLines("b", 0, 10))
	if !testenv.WaitUntil(hang, func() bool { return countLines(filepath.Join(dir, "out3", "b.log")) == 10 }) {
		t.Error("input b's lines did not reach the new output p")
	}
}
