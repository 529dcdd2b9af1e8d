package zookeeper

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/logagent/logagent/internal/testenv"
	"github.com/logagent/logagent/internal/zktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const hang = 2 * time.Minute

func fixture(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "serverset", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMember(t *testing.T) {
	tests := []struct {
		format, endpoint, name string
		data                   []byte
		want                   string // "" for skipped, "error" for an error
	}{
		{"auto", "", "member_0000000000", fixture(t, "scribe/member_0000000000"), "10.0.0.1:1463"},
		{"serverset", "", "member_0000000001", fixture(t, "scribe/member_0000000001"), ""},
		{"auto", "fb303", "member_0000000002", fixture(t, "scribe/member_0000000002"), "10.0.0.3:1464"},
		{"auto", "memcache", "member_0000000000", fixture(t, "kestrel/write/member_0000000000"), "10.0.1.1:22133"},
		{"auto", "thrift", "member_0000000001", fixture(t, "kestrel/write/member_0000000001"), "10.0.1.2:2229"},
		{"auto", "", "member_0000000001", fixture(t, "kestrel/write/member_0000000001"), "10.0.1.2:2229"},
		{"auto", "nope", "member_0000000001", fixture(t, "kestrel/write/member_0000000001"), "error"},
		{"auto", "", "10.0.0.9:1463", nil, "10.0.0.9:1463"},
		{"auto", "", "n1", []byte("10.0.0.8:1463\n"), "10.0.0.8:1463"},
		{"hostport", "", "scribe-a:1463", []byte("{}"), "scribe-a:1463"},
		{"hostport", "", "x", []byte("y"), "error"},
		{"serverset", "", "10.0.0.9:1463", nil, "error"},
		{"auto", "", "x", []byte("{broken"), "error"},
	}
	for _, tt := range tests {
		got, err := parseMember(tt.format, tt.endpoint, tt.name, tt.data)
		switch {
		case err == errSkip:
			got = ""
		case err != nil:
			got = "error"
		}
		if got != tt.want {
			t.Errorf("parseMember(%s, %q, %s, %s) = %q (%v), want %q", tt.format, tt.endpoint, tt.name, tt.data, got, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	c := Config{Servers: []string{"zk1", "zk2:2182"}, Path: "/logservers/scribe"}
	if err := c.Validate(); err != nil || c.Format != "auto" || c.SessionTimeout != 10*time.Second {
		t.Fatalf("%v %+v", err, c)
	}
	bad := Config{Path: "logservers/", Format: "json"}
	err := bad.Validate()
	for _, want := range []string{"servers: must list", "path: must be an absolute", "format: must be auto"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if errs := ValidateHosts(nil, 1463, nil); len(errs) != 1 || !strings.Contains(errs[0].Error(), "or set zookeeper:") {
		t.Errorf("neither hosts nor zookeeper: %v", errs)
	}
	if errs := ValidateHosts(nil, 1463, &Config{Servers: []string{"zk"}, Path: "/x"}); len(errs) != 1 || errs[0] != nil {
		t.Errorf("zookeeper alone: %v", errs)
	}
}

// load creates the fixture tree under root.
func load(t *testing.T, c *zk.Conn, root string) {
	dir := filepath.Join("testdata", "serverset")
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel != "." {
				zktest.MkdirAll(t, c, root+"/"+filepath.ToSlash(rel))
			}
			return nil
		}
		if strings.HasSuffix(p, ".md") {
			return nil
		}
		data, _ := os.ReadFile(p)
		if _, err := c.Create(root+"/"+filepath.ToSlash(rel), data, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
		return nil
	})
}

// sets records what a watcher hands over.
type sets struct {
	mu   sync.Mutex
	last []string
	n    int
}

func (s *sets) update(addrs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.n = addrs, s.n+1
}

func (s *sets) get() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.n
}

func (s *sets) waitFor(t *testing.T, want ...string) {
	t.Helper()
	if !testenv.WaitUntil(hang, func() bool { got, _ := s.get(); return slices.Equal(got, want) }) {
		got, _ := s.get()
		t.Fatalf("members %v, want %v", got, want)
	}
}

func TestWatch(t *testing.T) {
	srv := zktest.Start(t)
	c := srv.Conn(t)
	load(t, c, "/ss")
	cfg := Config{Servers: []string{srv.Addr}, Path: "/ss/scribe", SessionTimeout: 4 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var scribe, kestrel sets
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	w := NewWatcher(cfg, cfg.Path, nil)
	kcfg := cfg
	kcfg.Endpoint = "memcache"
	wg.Add(2)
	go func() { defer wg.Done(); w.Run(ctx, scribe.update) }()
	go func() { defer wg.Done(); NewWatcher(kcfg, "/ss/kestrel/write", nil).Run(ctx, kestrel.update) }()

	scribe.waitFor(t, "10.0.0.1:1463", "10.0.0.3:1463")
	kestrel.waitFor(t, "10.0.1.1:22133", "10.0.1.2:22133")

	// A member joins, one leaves, a DEAD one becomes ALIVE (its data
	// changes: the data watch).
	if _, err := c.Create("/ss/scribe/member_0000000003", []byte(`{"serviceEndpoint":{"host":"10.0.0.4","port":1463},"status":"ALIVE"}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	scribe.waitFor(t, "10.0.0.1:1463", "10.0.0.3:1463", "10.0.0.4:1463")
	if err := c.Delete("/ss/scribe/member_0000000000", -1); err != nil {
		t.Fatal(err)
	}
	scribe.waitFor(t, "10.0.0.3:1463", "10.0.0.4:1463")
	if _, err := c.Set("/ss/scribe/member_0000000001", []byte(`{"serviceEndpoint":{"host":"10.0.0.2","port":1463},"status":"ALIVE"}`), -1); err != nil {
		t.Fatal(err)
	}
	scribe.waitFor(t, "10.0.0.2:1463", "10.0.0.3:1463", "10.0.0.4:1463")

	// ZooKeeper down: the last set stays (no empty update), the error is
	// known; back up: changes are seen again.
	_, before := scribe.get()
	srv.Stop()
	if !testenv.WaitUntil(hang, func() bool { return w.Err() != nil }) {
		t.Fatal("the watcher did not notice ZooKeeper is down")
	}
	if got, n := scribe.get(); n != before || len(got) != 3 {
		t.Fatalf("while ZooKeeper is down: %d updates, members %v", n-before, got)
	}
	srv.Restart()
	c2 := srv.Conn(t)
	if err := c2.Delete("/ss/scribe/member_0000000003", -1); err != nil {
		t.Fatal(err)
	}
	scribe.waitFor(t, "10.0.0.2:1463", "10.0.0.3:1463")
	if !testenv.WaitUntil(hang, func() bool { return w.Err() == nil }) {
		t.Fatal("the watcher still reports an error")
	}
}

func TestRegister(t *testing.T) {
	srv := zktest.Start(t)
	c := srv.Conn(t)
	for _, format := range []string{"auto", "hostport"} {
		cfg := Config{Servers: []string{srv.Addr}, Path: "/reg/" + format + "/scribe", Format: format, SessionTimeout: 4 * time.Second}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := NewRegistration(cfg, "127.0.0.1:1463", nil)
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		var got sets
		wctx, wcancel := context.WithCancel(context.Background())
		wdone := make(chan struct{})
		go func() { defer close(wdone); NewWatcher(cfg, cfg.Path, nil).Run(wctx, got.update) }()
		got.waitFor(t, "127.0.0.1:1463")
		node := r.Node()
		if format == "auto" && !strings.HasPrefix(node, cfg.Path+"/member_") || format == "hostport" && node != cfg.Path+"/127.0.0.1:1463" {
			t.Fatalf("%s: node %q", format, node)
		}
		// Run returns only once the node is gone.
		cancel()
		<-done
		if ok, _, err := c.Exists(node); err != nil || ok {
			t.Fatalf("%s: node %s still there after Run returned (%v)", format, node, err)
		}
		got.waitFor(t)
		wcancel()
		<-wdone
	}
}

// TestListUnreachable: --dry-run's listing gives up with an error.
func TestListUnreachable(t *testing.T) {
	cfg := Config{Servers: []string{"127.0.0.1:1"}, Path: "/x"}
	cfg.Validate()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := List(ctx, cfg, "/x"); err == nil {
		t.Fatal("listed an unreachable ZooKeeper")
	}
}

// TestSessionExpired: the relay and the watcher are cut off from
// ZooKeeper for longer than their session timeout, so that their sessions
// expire: the relay's node is created again, and the watcher lists again
// and re-arms.
func TestSessionExpired(t *testing.T) {
	srv := zktest.Start(t)
	proxy := srv.Proxy(t)
	cfg := Config{Servers: []string{proxy.Addr}, Path: "/logservers/scribe", SessionTimeout: 2 * time.Second}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var got sets
	w := NewWatcher(cfg, cfg.Path, nil)
	reg := NewRegistration(cfg, "127.0.0.1:1463", nil)
	wg.Add(2)
	go func() { defer wg.Done(); reg.Run(ctx) }()
	go func() { defer wg.Done(); w.Run(ctx, got.update) }()
	got.waitFor(t, "127.0.0.1:1463")
	first := reg.Node()

	c := srv.Conn(t)
	proxy.Block(true)
	// The server expires the sessions: the relay's node goes away.
	if !testenv.WaitUntil(hang, func() bool { ok, _, err := c.Exists(first); return err == nil && !ok }) {
		t.Fatal("the session did not expire")
	}
	proxy.Block(false)
	if !testenv.WaitUntil(hang, func() bool { n := reg.Node(); return n != "" && n != first }) {
		t.Fatal("not registered again after the session expired")
	}
	if !testenv.WaitUntil(hang, func() bool { return w.Err() == nil }) {
		t.Fatalf("watcher error %v", w.Err())
	}
	// The watcher follows changes again (re-armed with its new session).
	if _, err := c.Create("/logservers/scribe/10.0.0.7:1463", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, "10.0.0.7:1463", "127.0.0.1:1463")
}

// TestWatchPathCreated: a path nobody registered under yet has no members;
// the first member to register is seen.
func TestWatchPathCreated(t *testing.T) {
	srv := zktest.Start(t)
	cfg := Config{Servers: []string{srv.Addr}, Path: "/not/yet", SessionTimeout: 4 * time.Second}
	cfg.Validate()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var got sets
	w := NewWatcher(cfg, cfg.Path, nil)
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(ctx, got.update) }()
	if !testenv.WaitUntil(hang, func() bool { _, n := got.get(); return n > 0 }) || w.Err() != nil {
		t.Fatalf("no empty listing: %v", w.Err())
	}
	if addrs, err := List(ctx, cfg, cfg.Path); err != nil || len(addrs) != 0 {
		t.Fatalf("List = %v, %v", addrs, err)
	}
	c := srv.Conn(t)
	zktest.MkdirAll(t, c, "/not/yet/10.0.0.1:1463")
	got.waitFor(t, "10.0.0.1:1463")
}
