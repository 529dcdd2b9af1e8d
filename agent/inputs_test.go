package agent

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logagent/logagent"
	scribein "github.com/logagent/logagent/inputs/scribe"
	"github.com/logagent/logagent/internal/testenv"
	scribeout "github.com/logagent/logagent/outputs/scribe"
)

func TestParseInputTypes(t *testing.T) {
	const outputs = "outputs:\n  - id: o\n    type: stdout\n"
	tests := []struct {
		name string
		yaml string
		want string // "" for valid
	}{
		{"scribe", "inputs:\n  - id: r\n    type: scribe\n    listen: 127.0.0.1:1463\n    idle_timeout: 1m\n" + outputs, ""},
		{"flume", "inputs:\n  - id: r\n    type: flume\n    listen: 127.0.0.1:4141\n    protocol: binary\n" + outputs, ""},
		{"flume protocol", "inputs:\n  - id: r\n    type: flume\n    protocol: json\n" + outputs,
			`c.yaml:5: inputs[0].protocol: must be compact or binary, got "json"`},
		{"file by default", "inputs:\n  - id: a\n    paths: [/x/*.log]\n" + outputs, ""},
		{"file by name", "inputs:\n  - id: a\n    type: file\n    paths: [/x/*.log]\n" + outputs, ""},
		{"unknown type", "inputs:\n  - id: r\n    type: syslog\n" + outputs,
			`c.yaml:4: inputs[0].type: unknown input type "syslog" (one of file, flume, journald, scribe)`},
		{"journald", "inputs:\n  - id: j\n    type: journald\n    units: [ssh.service]\n    priority: warning\n" + outputs, ""},
		{"journald priority", "inputs:\n  - id: j\n    type: journald\n    priority: loud\n" + outputs,
			`c.yaml:5: inputs[0].priority: "loud" is not a level`},
		{"journald unit", "inputs:\n  - id: j\n    type: journald\n    units: [a, \"\"]\n" + outputs,
			`c.yaml:5: inputs[0].units[1]: must not be empty`},
		{"file key on a relay", "inputs:\n  - id: r\n    type: scribe\n    paths: [/x]\n" + outputs,
			"c.yaml:5: inputs[0].paths: unknown key (known keys here: id, idle_timeout, listen, max_connections"},
		{"relay key on a file input", "inputs:\n  - id: a\n    paths: [/x/*.log]\n    listen: :1463\n" + outputs,
			"c.yaml:5: inputs[0].listen: unknown key"},
		{"bad listen", "inputs:\n  - id: r\n    type: scribe\n    listen: 1463\n" + outputs,
			`c.yaml:5: inputs[0].listen: must be host:port (0.0.0.0:1463, 127.0.0.1:0), got "1463"`},
		{"bad limit", "inputs:\n  - id: r\n    type: scribe\n    max_connections: 0\n" + outputs,
			"c.yaml:5: inputs[0].max_connections: must be >= 1, got 0"},
		{"unknown output", "inputs:\n  - id: r\n    type: scribe\n    outputs: [k]\n" + outputs,
			`c.yaml:5: inputs[0].outputs[0]: no output has id "k" (outputs: o)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte("data_dir: /x\n"+tt.yaml))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
			_ = cfg
		})
	}
	cfg, err := Parse("c.yaml", []byte("data_dir: /x\n"+tests[0].yaml))
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := cfg.Inputs[0].Settings().(*scribein.Config)
	if !ok || sc.Listen != "127.0.0.1:1463" || sc.IdleTimeout != time.Minute || sc.MaxConnections != 1000 {
		t.Fatalf("scribe settings: %+v", cfg.Inputs[0].Settings())
	}
}

// TestRelayInAgent: an agent with a scribe relay input delivers a Log call
// to its output before answering OK, and counts it on /metrics.
func TestRelayInAgent(t *testing.T) {
	dir := t.TempDir()
	a, stop := runAgent(t, dir, "data_dir: "+dir+"\ninputs:\n  - id: r\n    type: scribe\n    listen: 127.0.0.1:0\noutputs:\n  - id: o\n    type: file\n    path: "+dir+"/{category}.log\n")
	addr := a.relays[0].in.(*scribein.Input).Addr()
	out, err := scribeout.New("c", scribeout.Config{Hosts: []string{addr}, Timeout: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	src := &logagent.Source{Category: "web"}
	if err := out.Send(context.Background(), []logagent.Message{{Body: []byte("one"), Source: src}, {Body: []byte("two"), Source: src}}); err != nil {
		t.Fatal(err)
	}
	// Answered OK: the file output has written both.
	if b, err := os.ReadFile(dir + "/web.log"); err != nil || string(b) != "one\ntwo\n" {
		t.Fatalf("web.log = %q, %v", b, err)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `logagent_relay_total{counter="received",input="r"} 2`) {
		t.Errorf("metrics lack the relay's counters:\n%s", rec.Body.String())
	}
	stop()
}

// TestJournaldInAgent: a journald input's entries reach its output with
// the time the journal gives them, and its counters are on /metrics.
func TestJournaldInAgent(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "journal")
	os.Mkdir(journal, 0o755)
	// journalctl's stand-in prints two entries, one of an excluded unit,
	// and stays until it is stopped.
	script := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '__CURSOR=c1\\n__REALTIME_TIMESTAMP=1700000000000001\\nMESSAGE=hello\\n\\n__CURSOR=c2\\nMESSAGE=own\\n_SYSTEMD_UNIT=logagent.service\\n\\n'\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, stop := runAgent(t, dir, "data_dir: "+dir+"/data\ninputs:\n  - id: j\n    type: journald\n    journalctl: "+script+"\n    journal_directory: "+journal+"\n    exclude_units: [logagent]\noutputs:\n  - id: o\n    type: file\n    format: json\n    path: "+dir+"/out.log\n")
	defer stop()
	var line []byte
	if !testenv.WaitUntil(time.Minute, func() bool { line, _ = os.ReadFile(dir + "/out.log"); return len(line) > 0 }) {
		t.Fatal("the entry did not reach the output")
	}
	if !strings.Contains(string(line), `"@timestamp":"2023-11-14T22:13:20.000001000Z","message":"hello"`) {
		t.Fatalf("out.log = %s; want @timestamp from __REALTIME_TIMESTAMP", line)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`logagent_journald_total{counter="entries",input="j"} 2`,
		`logagent_journald_total{counter="messages",input="j"} 1`,
		`logagent_journald_total{counter="excluded",input="j"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, rec.Body.String())
		}
	}
}

// TestDryRunZooKeeperUnreachable: --dry-run says ZooKeeper could not be
// reached, as a warning, not an error; and shows what a relay would do.
func TestDryRunZooKeeperUnreachable(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse("c.yaml", []byte("data_dir: "+dir+`
inputs:
  - id: r
    type: scribe
    listen: 127.0.0.1:1463
outputs:
  - id: relays
    type: scribe
    zookeeper: {servers: ["127.0.0.1:1"], path: /logservers/scribe}
`))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := DryRun(context.Background(), cfg, &out, DryRunOptions{Quiet: true}); err != nil {
		t.Fatalf("dry-run failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "warning: output relays: could not reach ZooKeeper 127.0.0.1:1") {
		t.Fatalf("no warning:\n%s", out.String())
	}
	out.Reset()
	DryRun(context.Background(), cfg, &out, DryRunOptions{})
	if !strings.Contains(out.String(), "input r (scribe): Scribe server (framed, binary) on 127.0.0.1:1463") {
		t.Fatalf("relay not described:\n%s", out.String())
	}
}

// TestZooKeeperDownAtStart: an output whose hosts are all in an unreachable
// ZooKeeper keeps trying, and says so on /metrics.
func TestZooKeeperDownAtStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/a.log", []byte("one\n"), 0o644)
	cfg, err := Parse("c.yaml", []byte("data_dir: "+dir+"\nshutdown_timeout: 1s\ninputs:\n  - id: a\n    paths: ["+dir+"/*.log]\noutputs:\n  - id: relays\n    type: scribe\n    zookeeper: {servers: [\"127.0.0.1:1\"], path: /x}\n"))
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
	metrics := func() string {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	if !testenv.WaitUntil(time.Minute, func() bool {
		m := metrics()
		return strings.Contains(m, `logagent_output_zookeeper_ok{output="relays"} 0`) && strings.Contains(m, `logagent_output_healthy{output="relays",type="scribe"} 0`)
	}) {
		t.Fatalf("metrics:\n%s", metrics())
	}
	cancel()
	<-done
}
