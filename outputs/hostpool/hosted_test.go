package hostpool

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeDiscovery records what a Hosted asks of its discovery.
type fakeDiscovery struct {
	started Target
	starts  int
	stopped bool
	members []string
	err     error
}

func (d *fakeDiscovery) Start(t Target) {
	d.starts++
	if d.started == nil {
		d.started = t
		t.SetAddrs(d.members)
	}
}
func (d *fakeDiscovery) Stop()            { d.stopped = true }
func (d *fakeDiscovery) Describe() string { return "; found " + strings.Join(d.members, ", ") }
func (d *fakeDiscovery) Check() error     { return d.err }

// TestHosted checks the part every pooled output shares: its description
// and check include the discovery's, the discovery starts on demand and
// feeds the pool, and Close stops it.
func TestHosted(t *testing.T) {
	open := func(nc net.Conn) net.Conn { return nc }
	p := New([]string{"127.0.0.1:1", "no-such-host.invalid:2"}, time.Second, open, nil)
	d := &fakeDiscovery{members: []string{"127.0.0.1:3"}, err: errors.New("zk down")}
	h := NewHosted(p, d, "test: framed")
	if got, want := h.Describe(), "hosts 127.0.0.1:1, no-such-host.invalid:2 (test: framed); found 127.0.0.1:3"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	err := h.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no-such-host.invalid") || !strings.Contains(err.Error(), "zk down") {
		t.Errorf("Check = %v, want the unresolvable host and the discovery's error", err)
	}
	h.StartDiscovery()
	h.StartDiscovery()
	if d.starts != 2 || d.started != Target(p) {
		t.Errorf("discovery started %d times with %v, want the pool", d.starts, d.started)
	}
	p.apply()
	if got := h.Hosts(); len(got) != 3 || got[2].Addr != "127.0.0.1:3" {
		t.Errorf("Hosts = %+v, want the discovered host after the static ones", got)
	}
	if err := h.Close(); err != nil || !d.stopped {
		t.Errorf("Close = %v, discovery stopped %v", err, d.stopped)
	}

	// Without discovery (a nil interface, or a typed nil as outputs pass).
	for _, disc := range []Discovery{nil, (*nilSafe)(nil)} {
		h := NewHosted(p, disc, "test")
		h.StartDiscovery()
		if got := h.Describe(); got != "hosts 127.0.0.1:1, no-such-host.invalid:2, 127.0.0.1:3 (test)" {
			t.Errorf("Describe = %q", got)
		}
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}
	if !slices.Equal(p.Addrs(), []string{"127.0.0.1:1", "no-such-host.invalid:2", "127.0.0.1:3"}) {
		t.Errorf("Addrs = %v", p.Addrs())
	}
}

// nilSafe is a Discovery whose methods do nothing on a nil value, as
// zookeeper.Discovery's.
type nilSafe struct{}

func (*nilSafe) Start(Target)     {}
func (*nilSafe) Stop()            {}
func (*nilSafe) Describe() string { return "" }
func (*nilSafe) Check() error     { return nil }
