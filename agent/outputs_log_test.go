package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/testenv"
)

// TestOutputLogsNameOutputOnce checks that what a network output logs
// carries its id once: the agent tags the logger it gives the output, and
// a second "output" key makes JSON logs carry a duplicate key.
func TestOutputLogsNameOutputOnce(t *testing.T) {
	// A port nothing listens on: the connection is refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, typ := range []string{"scribe", "flume", "kestrel"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			cfgText := fmt.Sprintf("data_dir: %s/state\ninputs:\n  - id: app\n    paths: [\"%s/*.log\"]\noutputs:\n  - {id: out1, type: %s, hosts: [\"%s\"]}\n", dir, dir, typ, dead)
			path := filepath.Join(dir, "logagent.yaml")
			if err := os.WriteFile(path, []byte(cfgText), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var buf testenv.SyncBuffer
			a, err := New(cfg, slog.New(slog.NewJSONHandler(&buf, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer a.closeOutputs()
			defer a.store.Close()
			src := &logagent.Source{Input: "app", Category: "app", Path: "x.log"}
			if err := a.runners[0].out.Send(context.Background(), []logagent.Message{{Body: []byte("x"), Source: src}}); err == nil {
				t.Fatal("Send to a closed port succeeded")
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			found := false
			for _, line := range lines {
				if !strings.Contains(line, `"host failed"`) {
					continue
				}
				found = true
				if n := strings.Count(line, `"output":`); n != 1 {
					t.Errorf("log line has the output key %d times: %s", n, line)
				}
			}
			if !found {
				t.Fatalf("no \"host failed\" line logged; got:\n%s", buf.String())
			}
		})
	}
}
