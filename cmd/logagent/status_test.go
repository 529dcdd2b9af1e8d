package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/logagent/logagent/agent"
)

var update = flag.Bool("update", false, "rewrite the expected outputs in testdata/status")

func loadStatus(t *testing.T, name string) *agent.Status {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "status", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var st agent.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &st
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		width   int
		golden  string
		want    []string // besides the golden file: what the case is about
	}{
		{fixture: "backfill", golden: "backfill.txt", want: []string{
			"/var/log/big-backfill.log   512.0MiB     1.5GiB      33.3%    20.0MiB/s  active eta 51s",
			"central  scribe  failing 1m30s",
			"10.0.0.2:1463  down    5         12s",
			"in flight 12.0MiB of 32.0MiB",
			"up 2h47m30s",
			"input audit: 1 files, 89.0KiB behind",
			"/var/log/syslog.1                 0B         0B     100.0%            —  renamed", // rate not measured yet
			"  reading waits for output central since 1m29s · 9.0MiB in flight",
		}},
		{fixture: "backfill", width: 80, golden: "backfill.width80.txt", want: []string{
			"…og/big-backfill.log   512.0MiB",
		}},
		{fixture: "idle", golden: "idle.txt", want: []string{
			"input app: 0 files",
			"no file open",
			"checkpoint: 0 writes\n",
		}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var buf bytes.Buffer
			render(&buf, loadStatus(t, tc.fixture), tc.width)
			got := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			path := filepath.Join("testdata", "status", tc.golden)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("render differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
			}
			if tc.width > 0 {
				for _, line := range strings.Split(got, "\n") {
					if n := len([]rune(line)); n > tc.width {
						t.Errorf("line of %d runes at width %d: %q", n, tc.width, line)
					}
				}
			}
		})
	}
}

// TestStatusOnce runs the status command against a server serving a
// fixture: piped output prints once.
func TestStatusOnce(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("testdata", "status", "backfill.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		w.Write(fixture)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	addr := strings.TrimPrefix(srv.URL, "http://")
	if code := run([]string{"status", "--addr", addr}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want, _ := os.ReadFile(filepath.Join("testdata", "status", "backfill.txt"))
	if stdout.String() != string(want) {
		t.Errorf("got:\n%s", stdout.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"status", "--addr", "127.0.0.1:1", "--once"}, &stdout, &stderr); code != 1 {
		t.Errorf("unreachable agent: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "cannot reach the agent") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestStatusAddr(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "logagent.yaml")
	os.WriteFile(cfg, []byte(`
data_dir: state
http: {listen: "0.0.0.0:9200"}
inputs: [{id: a, paths: ["/nonexistent/*.log"]}]
outputs: [{id: o, type: stdout}]
`), 0o644)
	for _, tc := range []struct{ path, want string }{
		{cfg, "127.0.0.1:9200"},
		{filepath.Join(dir, "missing.yaml"), "127.0.0.1:9108"},
	} {
		if got := dialAddr(addrFromConfig(tc.path)); got != tc.want {
			t.Errorf("%s: addr %s, want %s", tc.path, got, tc.want)
		}
	}
	if got := dialAddr("[::]:9108"); got != "127.0.0.1:9108" {
		t.Errorf("[::]:9108 -> %s", got)
	}
}

// TestRenderEscapes: a file name (or an error, a host) with escape
// sequences reaches the operator's terminal escaped.
func TestRenderEscapes(t *testing.T) {
	evil := "/var/log/a\x1b]0;pwned\x07\x1b[2J\u202egol.\xff\tx.log"
	st := &agent.Status{
		Host: "h\x1b[31m",
		Inputs: []agent.InputStatus{{ID: "app", FilesOpen: 2, Files: []agent.FileStatus{
			{Path: evil, State: "active"},
		}}},
		Outputs: []agent.OutputStatus{{ID: "o", Type: "scribe", LastError: "dial " + evil,
			Hosts: []agent.HostStatus{{Addr: "x\x1b[1m:1463", LastError: "\x1b[2J"}}}},
	}
	var buf bytes.Buffer
	render(&buf, st, 0)
	got := buf.String()
	if i := strings.IndexFunc(got, func(r rune) bool {
		return r != '\n' && (r < 0x20 || r == 0x7f || r == 0x202e || r == utf8.RuneError)
	}); i >= 0 {
		t.Errorf("raw control character %q in:\n%s", got[i:min(len(got), i+4)], got)
	}
	for _, want := range []string{
		`/var/log/a\x1b]0;pwned\x07\x1b[2J\u202egol.\xff\x09x.log`,
		"logagent on h\\x1b[31m",
		"input app: 2 files",
		"(the 1 furthest behind shown)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
}
