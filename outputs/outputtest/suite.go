package outputtest

import (
	"context"
	"errors"
	"testing"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/hostpool"
)

// Output is a network output under test: it sends through a host pool.
type Output interface {
	logagent.Output
	Hosts() []hostpool.HostStatus
}

// Peer is a real server of an output's protocol (an apache/thrift server,
// kestreltest), run by the test on 127.0.0.1.
type Peer interface {
	Addr() string
	// Stop closes the listener and every connection; Restart listens
	// again on the same address.
	Stop()
	Restart()
	// Received counts every message the peer has committed so far.
	Received() *Counter
	// Hold makes the next call (or item) the peer serves wait until
	// release is called; held is closed once that call is waiting.
	Hold() (held <-chan struct{}, release func())
}

// Fault is a way a running peer refuses or breaks calls, as a real server
// can (TRY_LATER, FAILED, NOT_STORED, a connection closed mid-call): the
// output must retry, and lose nothing.
type Fault struct {
	Name string
	// Set makes p misbehave for a while: within 2000 messages of 50 bytes
	// in batches of 100, at least one Send must fail, and later ones
	// succeed.
	Set func(p Peer)
}

// Harness is what Conformance needs to test one network output (one
// protocol of it) against its real peer.
type Harness struct {
	// Start starts a peer, stopped when the test ends.
	Start func(t testing.TB) Peer
	// New returns an output sending to addrs, with CallTimeout as its call
	// timeout and a host backoff of milliseconds, closed when the test
	// ends.
	New func(t testing.TB, addrs ...string) Output
	// Faults are the output's own ways for a peer to misbehave; a peer
	// restart is tested for every output.
	Faults []Fault
	// Delivered, if set, checks what p holds after Conformance delivered
	// msgs to it without a fault (headers, categories, expiry).
	Delivered func(t *testing.T, p Peer, msgs []logagent.Message)
}

// Conformance is what every network output must do against its real peer,
// each as a subtest:
//   - Deliver: every message arrives once, without a retry, from batches
//     of messages of two categories interleaved;
//   - Faults: while the peer misbehaves (each Fault, and a restart), every
//     message still arrives, duplicated at most once per retry of a batch,
//     and none is reported undeliverable;
//   - Failover: batches go round robin to two hosts, all to the one that
//     is up while the other is down, and again to both once it is back;
//   - Cancel: a Send whose context is cancelled while the peer holds its
//     call returns, an error, and leaves the host healthy; the output goes
//     on delivering.
func Conformance(t *testing.T, h Harness) {
	t.Run("Deliver", func(t *testing.T) { testDeliver(t, h) })
	faults := append(append([]Fault(nil), h.Faults...), Fault{Name: "restart", Set: func(p Peer) {
		p.Stop()
		p.Restart()
	}})
	for _, f := range faults {
		t.Run("Faults/"+f.Name, func(t *testing.T) { testFault(t, h, f) })
	}
	t.Run("Failover", func(t *testing.T) { testFailover(t, h) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, h) })
}

// Context returns a context for a test's sends, cancelled when the test
// ends or after Hang (a bound for a hung test, not a timing assertion).
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Hang)
	t.Cleanup(cancel)
	return ctx
}

// SuiteSource is the Source of Conformance's messages of category
// category: with fields, one of them named like a fixed Flume header.
func SuiteSource(category string) *logagent.Source {
	src := Source(category)
	src.Fields = map[string]string{"env": "prod", "dc": "eu1", "host": "ignored"}
	return src
}

func testDeliver(t *testing.T, h Harness) {
	p := h.Start(t)
	o := h.New(t, p.Addr())
	const n = 4000
	msgs := append(Messages(SuiteSource("web"), 0, n/2, 100), Messages(SuiteSource("db"), n/2, n/2, 100)...)
	// Interleave the categories within batches.
	for i := 0; i < n/2; i += 2 {
		msgs[i], msgs[n/2+i] = msgs[n/2+i], msgs[i]
	}
	st := DeliverBatches(Context(t), t, o, msgs, 500)
	if st.Retries > 0 || st.Permanent > 0 {
		t.Errorf("%d retries, %d permanent, want none", st.Retries, st.Permanent)
	}
	if h.Delivered != nil {
		h.Delivered(t, p, msgs)
	}
	if missing, dups := p.Received().Check(0, n); len(missing) > 0 || dups > 0 {
		t.Fatalf("missing %d, duplicates %d", len(missing), dups)
	}
	if hs := o.Hosts(); len(hs) != 1 || !hs[0].Healthy {
		t.Errorf("hosts %+v, want one, healthy", hs)
	}
}

func testFault(t *testing.T, h Harness, f Fault) {
	p := h.Start(t)
	o := h.New(t, p.Addr())
	const n, batch = 3000, 100
	msgs := Messages(Source("web"), 0, n, 50)
	ctx := Context(t)
	// Deliver the first third, break the peer, deliver the rest.
	st := DeliverBatches(ctx, t, o, msgs[:n/3], batch)
	f.Set(p)
	st2 := DeliverBatches(ctx, t, o, msgs[n/3:], batch)
	missing, dups := p.Received().Check(0, n)
	if len(missing) > 0 {
		t.Fatalf("missing %d: %v", len(missing), missing[:min(10, len(missing))])
	}
	retries := st.Retries + st2.Retries
	if retries == 0 {
		t.Error("the fault caused no retry")
	}
	if dups > batch*retries {
		t.Errorf("%d duplicates for %d retries", dups, retries)
	}
	if st.Permanent+st2.Permanent > 0 {
		t.Errorf("%d permanent", st.Permanent+st2.Permanent)
	}
}

func testFailover(t *testing.T, h Harness) {
	a, b := h.Start(t), h.Start(t)
	o := h.New(t, a.Addr(), b.Addr())
	ctx := Context(t)
	src := Source("web")
	const batch = 50

	DeliverBatches(ctx, t, o, Messages(src, 0, 1000, 20), batch)
	if a.Received().Total() == 0 || b.Received().Total() == 0 {
		t.Fatalf("round robin: a got %d, b got %d", a.Received().Total(), b.Received().Total())
	}

	a.Stop()
	beforeB := b.Received().Total()
	DeliverBatches(ctx, t, o, Messages(src, 1000, 1000, 20), batch)
	if got := b.Received().Total() - beforeB; got < 1000 {
		t.Fatalf("with a down, b got %d of 1000", got)
	}
	if hs := o.Hosts(); hs[0].Healthy || hs[0].LastError == "" || !hs[1].Healthy {
		t.Errorf("hosts %+v, want a down and b up", hs)
	}

	a.Restart()
	beforeA := a.Received().Total()
	next := 2000
	WaitFor(t, Hang, "a to be used again", func() bool {
		DeliverBatches(ctx, t, o, Messages(src, next, batch, 20), batch)
		next += batch
		return a.Received().Total() > beforeA
	})
	if hs := o.Hosts(); !hs[0].Healthy || !hs[1].Healthy {
		t.Errorf("hosts %+v, want both up", hs)
	}
	for i := 0; i < next; i++ {
		ma, _ := a.Received().Check(i, 1)
		mb, _ := b.Received().Check(i, 1)
		if len(ma) > 0 && len(mb) > 0 {
			t.Fatalf("message %d reached neither host", i)
		}
	}
}

func testCancel(t *testing.T, h Harness) {
	p := h.Start(t)
	o := h.New(t, p.Addr())
	msgs := Messages(Source("web"), 0, 100, 20)
	held, release := p.Hold()
	ctx, cancel := context.WithCancel(Context(t))
	done := make(chan error, 1)
	go func() { done <- o.Send(ctx, msgs) }()
	WaitFor(t, Hang, "the peer to hold the call", func() bool {
		select {
		case <-held:
			return true
		default:
			return false
		}
	})
	cancel()
	var err error
	WaitFor(t, Hang, "Send to return after its context was cancelled", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	release()
	var pe *logagent.PartialError
	if err == nil || logagent.IsPermanent(err) || (errors.As(err, &pe) && len(pe.Permanent) > 0) {
		t.Fatalf("Send after cancel = %v, want an error to retry", err)
	}
	if hs := o.Hosts(); !hs[0].Healthy {
		t.Errorf("hosts %+v: a cancelled send marked the host failing", hs)
	}
	DeliverBatches(Context(t), t, o, msgs, len(msgs))
	if missing, _ := p.Received().Check(0, len(msgs)); len(missing) > 0 {
		t.Fatalf("missing %v after the cancelled send", missing)
	}
}
