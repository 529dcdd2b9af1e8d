// Package relay runs the logagent binary as a Scribe relay between Scribe
// clients (ours and Debian's python3-thrift) and a Kestrel-protocol server
// and a Kafka broker, and kills it mid-stream. Nothing here asserts on time.
package relay

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/pypeer"
	"github.com/logagent/logagent/internal/testenv"
	"github.com/logagent/logagent/outputs/flume"
	"github.com/logagent/logagent/outputs/kestrel/kestreltest"
	"github.com/logagent/logagent/outputs/scribe"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// hang bounds waits that only a hung process would exceed.
const hang = 5 * time.Minute

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRelay writes the relay's config and starts it.
func startRelay(t *testing.T, yaml string) *testenv.Agent {
	dir := t.TempDir()
	a := &testenv.Agent{Bin: testenv.Binary(t), ConfigPath: filepath.Join(dir, "logagent.yaml"), LogPath: filepath.Join(dir, "agent.log")}
	if err := os.WriteFile(a.ConfigPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a.Running() {
			a.Kill()
		}
		if t.Failed() {
			t.Logf("relay log:\n%s", a.Log())
		}
	})
	return a
}

func waitListening(t *testing.T, a *testenv.Agent, addr string) {
	t.Helper()
	if !testenv.WaitUntil(hang, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil || !a.Running()
	}) || !a.Running() {
		t.Fatalf("relay not listening on %s", addr)
	}
}

// goClient sends count lines of category through our Scribe output, in
// calls of batch lines, each call again until it is answered OK.
type goClient struct {
	mu    sync.Mutex
	acked []int64
}

func (g *goClient) ackedN() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.acked)
}

func (g *goClient) run(ctx context.Context, t *testing.T, kind, addr, category string, count, batch int) error {
	var out logagent.Output
	var err error
	if kind == "flume" {
		out, err = flume.New("client", flume.Config{Hosts: []string{addr}, Protocol: "compact", Timeout: time.Minute}, nil)
	} else {
		out, err = scribe.New("client", scribe.Config{Hosts: []string{addr}, Timeout: time.Minute}, nil)
	}
	if err != nil {
		return err
	}
	defer out.Close()
	src := &logagent.Source{Category: category}
	for seq := 0; seq < count; seq += batch {
		msgs := make([]logagent.Message, 0, batch)
		for i := seq; i < min(seq+batch, count); i++ {
			msgs = append(msgs, logagent.Message{Body: []byte(testenv.Line(category, int64(i))), Source: src})
		}
		for {
			if err := out.Send(ctx, msgs); err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(50 * time.Millisecond)
		}
		g.mu.Lock()
		for i := range msgs {
			g.acked = append(g.acked, int64(seq+i))
		}
		g.mu.Unlock()
	}
	return nil
}

// TestRelayKilled: Go and Python Scribe clients log through the relay to a
// Kestrel server and Kafka; the relay is killed with SIGKILL mid-stream and
// started again. Every entry a client was answered OK for is in both.
func TestRelayKilled(t *testing.T) { relayKilled(t, "scribe") }

// TestFlumeRelayKilled: the same through a flume relay, with our Flume
// client (appendBatch, compact).
func TestFlumeRelayKilled(t *testing.T) { relayKilled(t, "flume") }

func relayKilled(t *testing.T, kind string) {
	const goLines = 20_000
	pyLines := 4_000
	if kind == "flume" {
		pyLines = 0
	}
	q := kestreltest.NewQueues()
	ks := kestreltest.Start(t, q)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "go", "py"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	addr := freeAddr(t)
	yaml := fmt.Sprintf(`data_dir: %s
shutdown_timeout: 5s
inputs:
  - id: relay
    type: %s
    listen: %s
outputs:
  - id: queue
    type: kestrel
    hosts: [%q]
    min_backoff: 10ms
    max_backoff: 200ms
  - id: kafka
    type: kafka
    brokers: [%q]
    min_backoff: 10ms
    max_backoff: 200ms
`, t.TempDir(), kind, addr, ks.Addr(), kc.ListenAddrs()[0])
	relay := startRelay(t, yaml)
	waitListening(t, relay, addr)

	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	var g goClient
	goDone := make(chan error, 1)
	go func() { goDone <- g.run(ctx, t, kind, addr, "go", goLines, 100) }()
	var py *pypeer.Client
	pyAcked := func() []int64 { return nil }
	if pyLines > 0 {
		py = pypeer.StartClient(t, addr, "py", "py", pyLines, 50)
		pyAcked = func() []int64 { return py.Acked(t) }
	}

	if !testenv.WaitUntil(hang, func() bool { return g.ackedN() >= goLines/4 && (py == nil || len(pyAcked()) > 0) }) {
		t.Fatalf("clients acked %d and %d lines before the kill", g.ackedN(), len(pyAcked()))
	}
	if err := relay.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the relay with %d + %d lines acked", g.ackedN(), len(pyAcked()))
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-goDone; err != nil {
		t.Fatal(err)
	}
	if py != nil {
		select {
		case err := <-py.Done():
			if err != nil {
				t.Fatalf("python client: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("python client did not finish")
		}
	}

	check := func(where string, got map[string]map[int64]int) {
		for _, c := range []struct {
			cat   string
			acked []int64
		}{{"go", g.acked}, {"py", pyAcked()}} {
			missing := 0
			for _, s := range c.acked {
				if got[c.cat][s] == 0 {
					missing++
				}
			}
			dupes := 0
			for _, n := range got[c.cat] {
				dupes += max(0, n-1)
			}
			t.Logf("%s %s: %d acked, %d distinct found, %d duplicates", where, c.cat, len(c.acked), len(got[c.cat]), dupes)
			if missing > 0 {
				t.Errorf("%s %s: %d lines answered OK are missing", where, c.cat, missing)
			}
		}
	}
	parse := func(got map[string]map[int64]int, body []byte, want string) {
		tag, seq, ok := testenv.ParseLine(body)
		if !ok || tag != want {
			t.Errorf("bad line in %s: %q", want, body)
			return
		}
		got[tag][seq]++
	}

	inQueue := map[string]map[int64]int{"go": {}, "py": {}}
	for _, cat := range []string{"go", "py"} {
		for _, item := range q.Drain(cat) {
			parse(inQueue, item, cat)
		}
	}
	check("kestrel", inQueue)

	inKafka := map[string]map[int64]int{"go": {}, "py": {}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("go", "py"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Kafka acknowledged what the relay answered OK for: it is there
	// already; read until every acked line is.
	want := func() bool {
		for _, c := range []struct {
			cat   string
			acked []int64
		}{{"go", g.acked}, {"py", pyAcked()}} {
			for _, s := range c.acked {
				if inKafka[c.cat][s] == 0 {
					return false
				}
			}
		}
		return true
	}
	for !want() && ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) { parse(inKafka, r.Value, r.Topic) })
	}
	check("kafka", inKafka)
}
