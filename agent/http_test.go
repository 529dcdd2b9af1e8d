package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logagent/logagent/internal/testenv"
)

// serveAgent runs an agent on the config text (with {dir} replaced by a
// temporary directory) and serves its handler; both stop at cleanup.
func serveAgent(t *testing.T, text string) (a *Agent, url, dir string) {
	t.Helper()
	dir = t.TempDir()
	path := filepath.Join(dir, "logagent.yaml")
	text = strings.ReplaceAll(text, "{dir}", dir)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	srv := httptest.NewServer(a.Handler(BuildInfo("test", "none", "go")))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return a, srv.URL, dir
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// pollUntil polls cond every 20ms until it holds; hang bounds a hung test.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeNumbered(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

const healthyConfig = `
data_dir: {dir}/state
http:
  listen: 127.0.0.1:0
inputs:
  - id: app
    paths: ["{dir}/logs/*.log"]
outputs:
  - id: local
    type: file
    path: {dir}/out/{category}.log
`

// Without inotify (LOGAGENT_INOTIFY=off, as where no instance can be had),
// the metric and /status count the directory as polled.
func TestDirectoriesPolledCounted(t *testing.T) {
	t.Setenv("LOGAGENT_INOTIFY", "off")
	dir := t.TempDir()
	writeNumbered(t, filepath.Join(dir, "logs", "a.log"), 10)
	a, url, _ := serveAgent(t, strings.ReplaceAll(healthyConfig, "{dir}/logs", dir+"/logs"))
	pollUntil(t, "10 lines delivered", func() bool {
		st := a.Status()
		return len(st.Outputs) == 1 && st.Outputs[0].Messages == 10
	})
	st := a.Status()
	if in := st.Inputs[0]; in.DirsPolled != 1 || in.DirsWatched != 0 {
		t.Errorf("status: %d directories watched, %d polled; want 0 and 1", in.DirsWatched, in.DirsPolled)
	}
	_, body := httpGet(t, url+"/metrics")
	for _, want := range []string{
		`logagent_input_directories{input="app",mode="watched"} 0`,
		`logagent_input_directories{input="app",mode="polled"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestMetricsAndStatus(t *testing.T) {
	dir := t.TempDir()
	writeNumbered(t, filepath.Join(dir, "logs", "a.log"), 1000)
	a, url, _ := serveAgent(t, strings.ReplaceAll(healthyConfig, "{dir}/logs", dir+"/logs"))

	pollUntil(t, "1000 lines delivered", func() bool {
		st := a.Status()
		return len(st.Outputs) == 1 && st.Outputs[0].Messages == 1000 &&
			len(st.Inputs) == 1 && len(st.Inputs[0].Files) == 1 && st.Inputs[0].Files[0].Percent == 100
	})
	code, body := httpGet(t, url+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{
		`logagent_input_lines_total{input="app"} 1000`,
		`logagent_input_bytes_total{input="app"}`,
		`logagent_input_files_open{input="app"} 1`,
		`logagent_input_bytes_behind{input="app"} 0`,
		`logagent_input_directories{input="app",mode="watched"} 1`,
		`logagent_input_directories{input="app",mode="polled"} 0`,
		`logagent_file_bytes_behind{input="app",path="` + filepath.Join(dir, "logs", "a.log") + `"} 0`,
		`logagent_output_messages_total{output="local",type="file"} 1000`,
		`logagent_output_bytes_total{output="local",type="file"}`,
		`logagent_output_batches_total{output="local",type="file"}`,
		`logagent_output_retries_total{output="local",type="file"} 0`,
		`logagent_output_permanent_errors_total{output="local",type="file"} 0`,
		`logagent_output_send_duration_seconds_bucket{output="local",type="file",le="+Inf"}`,
		`logagent_output_send_duration_seconds_count{output="local",type="file"}`,
		`logagent_output_healthy{output="local",type="file"} 1`,
		`logagent_inflight_bytes`,
		`logagent_inflight_limit_bytes 3.3554432e+07`,
		`logagent_checkpoint_writes_total`,
		`logagent_checkpoint_syncs_total`,
		`logagent_checkpoint_age_seconds`,
		`logagent_build_info{commit="none",goversion="go",version="test"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	code, body = httpGet(t, url+"/healthz")
	if code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q, want 200 ok", code, body)
	}

	code, body = httpGet(t, url+"/status")
	if code != 200 {
		t.Fatalf("/status: %d", code)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	if len(st.Inputs) != 1 || len(st.Inputs[0].Files) != 1 {
		t.Fatalf("/status inputs: %+v", st.Inputs)
	}
	f := st.Inputs[0].Files[0]
	if f.Offset != f.Size || f.Size == 0 || f.Percent != 100 || f.Behind != 0 {
		t.Errorf("/status file: %+v", f)
	}
	if o := st.Outputs[0]; o.ID != "local" || o.Type != "file" || !o.Healthy || o.Messages != 1000 {
		t.Errorf("/status output: %+v", o)
	}
}

func TestHealthzFailingOutput(t *testing.T) {
	// The output's directory is a regular file: opening fails, even as
	// root, so every send fails and is retried.
	cfg := `
data_dir: {dir}/state
shutdown_timeout: 200ms
http:
  listen: 127.0.0.1:0
  unhealthy_after: 200ms
inputs:
  - id: app
    paths: ["{dir}/logs/*.log"]
    scan_interval: 100ms
outputs:
  - id: broken
    type: file
    path: {dir}/notadir/out.log
    min_backoff: 10ms
    max_backoff: 50ms
`
	a, url, dir := serveAgent(t, cfg)
	if err := os.WriteFile(filepath.Join(dir, "notadir"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, filepath.Join(dir, "logs", "a.log"), 10)

	pollUntil(t, "/healthz 503", func() bool {
		code, _ := httpGet(t, url+"/healthz")
		return code == http.StatusServiceUnavailable
	})
	_, body := httpGet(t, url+"/healthz")
	if !strings.Contains(body, "output broken failing") {
		t.Errorf("/healthz body %q does not name the output", body)
	}
	_, metrics := httpGet(t, url+"/metrics")
	for _, want := range []string{`logagent_output_healthy{output="broken",type="file"} 0`, `logagent_output_failing_seconds{output="broken"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	st := a.Status()
	if o := st.Outputs[0]; o.Healthy || o.Retries == 0 || o.LastError == "" || o.FailingSince.IsZero() {
		t.Errorf("status of the failing output: %+v", o)
	}
	if f := st.Inputs[0].Files; len(f) != 1 || f[0].Offset != 0 || f[0].Behind == 0 {
		t.Errorf("nothing is delivered, so nothing is committed: %+v", f)
	}
}

func TestFileSeriesBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range MaxFileSeries + 5 {
		writeNumbered(t, filepath.Join(dir, "logs", fmt.Sprintf("f%02d.log", i)), 1)
	}
	a, url, _ := serveAgent(t, strings.ReplaceAll(healthyConfig, "{dir}/logs", dir+"/logs"))
	pollUntil(t, "every file open", func() bool {
		return len(a.Status().Inputs[0].Files) == MaxFileSeries+5
	})
	_, body := httpGet(t, url+"/metrics")
	if n := strings.Count(body, "logagent_file_bytes_behind{"); n != MaxFileSeries {
		t.Errorf("%d per-file series, want %d", n, MaxFileSeries)
	}
	if !strings.Contains(body, `logagent_input_files_open{input="app"} 25`) {
		t.Errorf("files_open should count every file")
	}
}

func TestBackfillProgressLog(t *testing.T) {
	interval, bytes, span := progressLogInterval, progressLogBytes, progressRateSpan
	progressLogInterval, progressLogBytes, progressRateSpan = 2*time.Second, 100, time.Second
	defer func() { progressLogInterval, progressLogBytes, progressRateSpan = interval, bytes, span }()

	// The output cannot deliver, so the file stays behind.
	dir := t.TempDir()
	writeNumbered(t, filepath.Join(dir, "logs", "big.log"), 1000)
	os.WriteFile(filepath.Join(dir, "notadir"), nil, 0o644)
	path := filepath.Join(dir, "logagent.yaml")
	os.WriteFile(path, []byte(strings.ReplaceAll(`
data_dir: {dir}/state
shutdown_timeout: 100ms
inputs:
  - id: app
    paths: ["{dir}/logs/*.log"]
outputs:
  - id: broken
    type: file
    path: {dir}/notadir/out.log
    min_backoff: 10ms
    max_backoff: 50ms
`, "{dir}", dir)), 0o644)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pollUntil(t, "a backfill progress line", func() bool {
		return strings.Contains(logs.String(), `msg="backfill progress" input=app path=`+filepath.Join(dir, "logs", "big.log")+" offset=0")
	})
	// Its rate, measured from the offsets marked progressRateSpan
	// before: nothing is delivered.
	pollUntil(t, "a backfill progress line with a rate", func() bool {
		return strings.Contains(logs.String(), " bytes_per_sec=0\n")
	})
}

// TestStatusFilesBounded: /status lists at most MaxStatusFiles files per
// input, so that its size does not grow with the files open; the counts
// cover every file.
func TestStatusFilesBounded(t *testing.T) {
	dir := t.TempDir()
	n := MaxStatusFiles + 3
	for i := range n {
		writeNumbered(t, filepath.Join(dir, "logs", fmt.Sprintf("f%04d.log", i)), 1)
	}
	a, url, _ := serveAgent(t, strings.ReplaceAll(healthyConfig, "{dir}/logs", dir+"/logs"))
	pollUntil(t, "every file open", func() bool { return a.Status().Inputs[0].FilesOpen == n })
	_, body := httpGet(t, url+"/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if in := st.Inputs[0]; len(in.Files) != MaxStatusFiles || in.FilesOpen != n {
		t.Errorf("/status lists %d files of %d open, want %d of %d", len(in.Files), in.FilesOpen, MaxStatusFiles, n)
	}
}

// TestServerLimits: the listener serves at most MaxHTTPConns connections
// at once, whatever the clients do; and it has every timeout.
func TestServerLimits(t *testing.T) {
	var (
		mu             sync.Mutex
		active, maxAct int
	)
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		active++
		maxAct = max(maxAct, active)
		mu.Unlock()
		<-release
		mu.Lock()
		active--
		mu.Unlock()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, limited := NewServer(ln, h)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("a timeout or limit is not set: %+v", srv)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(limited)
	}()
	defer func() {
		srv.Close()
		<-served
	}()

	clients := 3 * MaxHTTPConns
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			io.Copy(io.Discard, c)
		}()
	}
	pollUntil(t, "the handlers busy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return active >= MaxHTTPConns
	})
	close(release)
	wg.Wait()
	if maxAct > MaxHTTPConns {
		t.Errorf("%d connections served at once, want at most %d", maxAct, MaxHTTPConns)
	}
}
