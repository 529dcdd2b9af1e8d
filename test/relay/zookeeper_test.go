package relay

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/logagent/logagent/internal/testenv"
	"github.com/logagent/logagent/internal/zktest"
)

// lines counts the lines of a file.
func lines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// TestTwoTierZooKeeper: an agent finds three relays through ZooKeeper,
// where they registered themselves, and ships at a steady rate; one relay
// is killed with SIGKILL (its node lingers until its session expires), a
// new one joins, and ZooKeeper itself is stopped for a while: every line
// arrives, and the new relay receives traffic.
func TestTwoTierZooKeeper(t *testing.T) {
	zk := zktest.Start(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(out, 0o755)
	zkSection := fmt.Sprintf("{servers: [%q], path: /logservers/scribe, session_timeout: 4s}", zk.Addr)
	relay := func(n int) *testenv.Agent {
		return startRelay(t, fmt.Sprintf(`data_dir: %s
inputs:
  - id: scribe-in
    type: scribe
    listen: %s
    register: {zookeeper: %s}
outputs:
  - id: out
    type: file
    path: %s
`, filepath.Join(dir, fmt.Sprintf("r%d", n)), freeAddr(t), zkSection, filepath.Join(out, fmt.Sprintf("r%d-{category}.log", n))))
	}
	members := func() int {
		c := zk.Conn(t)
		defer c.Close()
		ch, _, err := c.Children("/logservers/scribe")
		if err != nil {
			return -1
		}
		return len(ch)
	}
	relays := []*testenv.Agent{relay(1), relay(2), relay(3)}
	if !testenv.WaitUntil(hang, func() bool { return members() == 3 }) {
		t.Fatalf("%d relays registered, want 3", members())
	}

	s := &testenv.Stream{Tag: "app", Dir: logs, Name: "app.log", Method: testenv.NoRotation}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	agent := startRelay(t, fmt.Sprintf(`data_dir: %s
checkpoint_interval: 200ms
inputs:
  - id: logs
    paths: [%q]
    category: app
    poll_interval: 50ms
outputs:
  - id: relays
    type: scribe
    zookeeper: %s
    timeout: 10s
    min_backoff: 50ms
    max_backoff: 500ms
    batch: {max_events: 100, flush_interval: 50ms}
`, filepath.Join(dir, "agent"), filepath.Join(logs, "*.log"), zkSection))

	// A steady rate: 20 lines every 10ms.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := s.Write(20); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	got := func(n int) int { return lines(filepath.Join(out, fmt.Sprintf("r%d-app.log", n))) }
	total := func() int { return got(1) + got(2) + got(3) + got(4) }
	if !testenv.WaitUntil(hang, func() bool { return got(1) > 0 && got(2) > 0 && got(3) > 0 }) {
		t.Fatalf("relays received %d, %d, %d lines", got(1), got(2), got(3))
	}
	if err := relays[0].Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("relay 1 killed with %d lines received in all", total())
	relay(4)
	if !testenv.WaitUntil(hang, func() bool { return got(4) > 0 }) {
		t.Fatal("the relay that joined receives nothing")
	}
	t.Logf("relay 4 joined and receives lines")
	zk.Stop()
	before := total()
	// ZooKeeper down: shipping goes on to the relays known.
	if !testenv.WaitUntil(hang, func() bool { return total() > before+2000 }) {
		t.Fatalf("only %d lines shipped while ZooKeeper was down", total()-before)
	}
	t.Logf("%d lines shipped while ZooKeeper was down", total()-before)
	zk.Restart()
	close(stop)
	wg.Wait()

	c := testenv.NewChecker(filepath.Join(out, "*.log"), s)
	if !testenv.WaitUntil(hang, func() bool { c.Poll(); return c.Delivered() }) {
		t.Logf("agent log:\n%s", agent.Log())
	}
	res, stray, err := c.Results()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%s", r)
		if r.Missing > 0 {
			t.Errorf("%d lines missing; e.g. %v", r.Missing, c.MissingSample(r.Tag, 5))
		}
	}
	if stray > 0 {
		t.Errorf("%d stray lines", stray)
	}
	t.Logf("lines per relay: %d %d %d %d", got(1), got(2), got(3), got(4))
}
