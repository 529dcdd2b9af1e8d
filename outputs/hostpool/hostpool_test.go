package hostpool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/logagent/logagent"
)

func TestParseHosts(t *testing.T) {
	tests := []struct {
		in     []string
		port   int
		want   string
		fields string
	}{
		{[]string{"a", "b:2", "10.0.0.1", "[::1]:5", "::1", "[fe80::1]"}, 1463, "[a:1463 b:2 10.0.0.1:1463 [::1]:5 [::1]:1463 [fe80::1]:1463]", "[]"},
		{nil, 1463, "[]", "[hosts]"},
		{[]string{"a", ""}, 1, "[a:1]", "[hosts[1]]"},
		{[]string{"a:70000", "a b:1", "a:1", "a:1"}, 1, "[a:1]", "[hosts[0] hosts[1] hosts[3]]"},
		{[]string{"flume"}, 0, "[]", "[hosts[0]]"},
	}
	for _, tt := range tests {
		got, errs := ParseHosts(tt.in, tt.port)
		var fields []string
		for _, e := range errs {
			var fe *logagent.FieldError
			if !errors.As(e, &fe) {
				t.Fatalf("%v is not a FieldError", e)
			}
			fields = append(fields, fe.Field)
		}
		if fmt.Sprint(got) != tt.want || fmt.Sprint(fields) != tt.fields {
			t.Errorf("ParseHosts(%q) = %v %v, want %s %s (%v)", tt.in, got, fields, tt.want, tt.fields, errs)
		}
	}
}

// silent accepts connections and never answers.
func silent(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// readOne is an attempt that waits for one byte that never comes.
func readOne(_ context.Context, c *Conn[struct{}], pending []int) Result {
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return Result{Retry: pending, Err: err, Broken: true}
	}
	return Result{}
}

func noState(net.Conn) struct{} { return struct{}{} }

// TestCancel checks that Send returns once ctx is done, even while the peer
// never answers, and does not count that against the host.
func TestCancel(t *testing.T) {
	p := New([]string{silent(t)}, time.Hour, noState, nil)
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Send(ctx, 3, readOne) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err == nil || errors.As(err, new(*logagent.PartialError)) {
			t.Fatalf("Send = %v, want a plain error", err)
		}
	case <-time.After(30 * time.Second): // a bound for a hung test
		t.Fatal("Send did not return after cancel")
	}
	if h := p.Hosts(); !h[0].Healthy {
		t.Errorf("host marked failed by a cancel: %+v", h)
	}
}

// TestTimeout checks that the pool timeout bounds a call to a peer that
// never answers, and that the host is then taken out.
func TestTimeout(t *testing.T) {
	p := New([]string{silent(t)}, 100*time.Millisecond, noState, nil)
	defer p.Close()
	err := p.Send(context.Background(), 2, readOne)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Send = %v, want a timeout", err)
	}
	if h := p.Hosts(); h[0].Healthy || h[0].Failures != 1 || h[0].RetryAt.IsZero() {
		t.Errorf("hosts %+v, want one failure", h)
	}
}

// TestPartialFailover checks that the undelivered part of a batch goes to
// the next host, and that the result lists only what is still undelivered.
func TestPartialFailover(t *testing.T) {
	a, b := silent(t), silent(t)
	p := New([]string{a, b}, time.Second, noState, nil)
	defer p.Close()
	var calls []string
	err := p.Send(context.Background(), 4, func(_ context.Context, c *Conn[struct{}], pending []int) Result {
		calls = append(calls, fmt.Sprint(c.Addr == a, pending))
		if c.Addr == a {
			// Delivered 0, 1 is permanent, the connection broke before 2, 3.
			return Result{Retry: []int{2, 3}, Permanent: []int{1}, Err: errors.New("reset"), Broken: true}
		}
		return Result{Retry: []int{3}, Err: errors.New("full")}
	})
	var pe *logagent.PartialError
	if !errors.As(err, &pe) || fmt.Sprint(pe.Retry) != "[3]" || fmt.Sprint(pe.Permanent) != "[1]" {
		t.Fatalf("Send = %#v", err)
	}
	if fmt.Sprint(calls) != "[true [0 1 2 3] false [2 3]]" {
		t.Errorf("calls %v", calls)
	}
	// a answered part of the call before its connection broke: it is up.
	h := p.Hosts()
	if !h[0].Healthy || !h[1].Healthy {
		t.Errorf("hosts %+v", h)
	}
}

// TestHostHealth checks which outcomes of an attempt take a host out: a
// connection that broke before any answer, and a refusal, do; one that
// broke after answers does not. After a refusal the connection is kept.
func TestHostHealth(t *testing.T) {
	tests := []struct {
		name    string
		result  func(pending []int) Result
		healthy bool
		redial  bool // the next call to a is on a new connection
	}{
		{"broken before answers", func(p []int) Result { return Result{Retry: p, Err: errors.New("reset"), Broken: true} }, false, true},
		{"broken after answers", func(p []int) Result { return Result{Retry: p[1:], Err: errors.New("reset"), Broken: true} }, true, true},
		{"refused", func(p []int) Result { return Result{Retry: p, Err: errors.New("try later"), Refused: true} }, false, false},
		{"not stored", func(p []int) Result { return Result{Retry: p[1:], Err: errors.New("full")} }, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := silent(t), silent(t)
			p := New([]string{a, b}, time.Second, noState, nil)
			p.SetBackoff(time.Nanosecond, time.Nanosecond) // a is back at once
			defer p.Close()
			var aConn net.Conn
			var bCalls int
			p.Send(context.Background(), 4, func(_ context.Context, c *Conn[struct{}], pending []int) Result {
				if c.Addr == a {
					aConn = c.Conn
					return tt.result(pending)
				}
				bCalls++
				return Result{}
			})
			h := p.Hosts()
			if h[0].Healthy != tt.healthy {
				t.Errorf("a healthy = %v, want %v: %+v", h[0].Healthy, tt.healthy, h[0])
			}
			failedOver := !tt.healthy || tt.name == "broken after answers"
			if (bCalls == 1) != failedOver {
				t.Errorf("b called %d times, want a failover: %v", bCalls, failedOver)
			}
			// Call a again: its backoff has passed.
			p.next = 0
			var again net.Conn
			p.Send(context.Background(), 1, func(_ context.Context, c *Conn[struct{}], pending []int) Result {
				if c.Addr == a {
					again = c.Conn
				}
				return Result{}
			})
			if again == nil {
				t.Fatal("a not called again")
			}
			if (again != aConn) != tt.redial {
				t.Errorf("new connection = %v, want %v", again != aConn, tt.redial)
			}
		})
	}
}

// TestProbe checks that a host that could not be reached is probed with a
// connection attempt, and used again as soon as it accepts one.
func TestProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := New([]string{addr}, time.Second, noState, nil)
	p.SetBackoff(time.Hour, time.Hour) // only the probe brings it back
	defer p.Close()
	ok := func(context.Context, *Conn[struct{}], []int) Result { return Result{} }
	if err := p.Send(context.Background(), 1, ok); err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
	if err := p.Probe(context.Background()); err == nil {
		t.Fatal("Probe of a closed port succeeded")
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer ln.Close()
	if err := p.Probe(context.Background()); err != nil {
		t.Fatalf("Probe of a listening host: %v", err)
	}
	if err := p.Send(context.Background(), 1, ok); err != nil {
		t.Fatalf("Send after a good probe: %v", err)
	}
	if h := p.Hosts(); !h[0].Healthy {
		t.Errorf("host %+v, want healthy", h[0])
	}
	// With every host up there is nothing a probe could show.
	if err := p.Probe(context.Background()); err == nil {
		t.Error("Probe of a pool with every host up succeeded")
	}
}

// TestProbeLeavesRefusingHost: a host that refused ("try later") keeps its
// backoff; a connection it accepts says nothing new.
func TestProbeLeavesRefusingHost(t *testing.T) {
	p := New([]string{silent(t)}, time.Second, noState, nil)
	defer p.Close()
	err := p.Send(context.Background(), 2, func(_ context.Context, _ *Conn[struct{}], pending []int) Result {
		return Result{Retry: pending, Err: errors.New("try later"), Refused: true}
	})
	if err == nil {
		t.Fatal("refused Send succeeded")
	}
	if h := p.Hosts(); h[0].Healthy {
		t.Fatalf("refusing host healthy: %+v", h[0])
	}
	if err := p.Probe(context.Background()); err == nil {
		t.Error("Probe cut short the backoff of a host that refused")
	}
}
