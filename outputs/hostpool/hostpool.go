// Package hostpool spreads the batches of one output over several hosts,
// keeps one connection per host, takes a failing host out with exponential
// backoff and jitter, and fails a batch over to the next host when the
// connection it was sent on breaks or the host refuses it ("try later").
//
// A host is failing when it could not be reached, broke a connection before
// answering anything, or refused a call; a connection that broke after
// answering part of a call leaves its host healthy (it is reconnected). A
// failing host that did not refuse is probed (Probe) with a connection
// attempt, cheaply and often, so that it is used again soon after it is
// back.
//
// A Pool is used by one output, whose Send the scheduler calls from a single
// goroutine; Hosts may be called from any goroutine (metrics).
package hostpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logagent/logagent"
)

// Default backoff of a failed host. The scheduler backs off on its own when
// every host is down; the host backoff only steers batches away from a
// failed host while another one is healthy.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// HostStatus is the health of one host, for metrics and --dry-run.
type HostStatus struct {
	Addr    string
	Healthy bool
	// Failures counts the consecutive failures of the host; 0 once it has
	// answered again.
	Failures int
	// RetryAt is when a failed host is tried again (zero when healthy).
	RetryAt   time.Time
	LastError string
}

// Conn is an open connection to one host with the per-connection state S an
// output keeps on it (a Thrift protocol, a buffered writer).
type Conn[S any] struct {
	net.Conn
	State S
	Addr  string
	host  *host[S]
}

type host[S any] struct {
	addr     string
	conn     *Conn[S]
	failures int
	retryAt  time.Time
	lastErr  string
	// refused is set when the host's last failure was a refusal (it
	// answered "try later"): it is then left to its backoff, where a host
	// that failed otherwise is probed.
	refused bool
}

// Pool is a set of hosts of one output.
type Pool[S any] struct {
	timeout    time.Duration
	open       func(net.Conn) S
	log        *slog.Logger
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	minBackoff time.Duration
	maxBackoff time.Duration

	// mu guards the health fields of hosts, and hosts itself against
	// Hosts and Addrs; Send's goroutine (the owner) alone replaces hosts,
	// under mu, and reads it without.
	mu    sync.Mutex
	hosts []*host[S]
	next  int

	// static are the configured hosts; discovered the last set SetAddrs
	// was given (nil until then). Send takes a change in at its start:
	// a batch in flight finishes on the host it was sent to.
	static     []string
	discovered atomic.Pointer[[]string]
	applied    *[]string // the discovered set hosts reflect; owner only
	// noHosts, when set, says why the pool has no host yet (shown as
	// Send's error).
	noHosts atomic.Pointer[string]
}

// New returns a pool over addrs (host:port, as returned by ParseHosts).
// timeout bounds each dial; open builds the per-connection state of a new
// connection. New does no I/O.
func New[S any](addrs []string, timeout time.Duration, open func(net.Conn) S, log *slog.Logger) *Pool[S] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool[S]{
		timeout:    timeout,
		open:       open,
		log:        log,
		minBackoff: DefaultMinBackoff,
		maxBackoff: DefaultMaxBackoff,
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	p.dial = d.DialContext
	p.static = addrs
	for _, a := range addrs {
		p.hosts = append(p.hosts, &host[S]{addr: a})
	}
	return p
}

// SetAddrs sets the discovered hosts (host:port), added to the static ones
// given to New. It may be called from any goroutine; Send applies the
// change before its next batch. A host that leaves gets no new batch and
// its connection is closed; a host that stays keeps its connection and
// health.
func (p *Pool[S]) SetAddrs(addrs []string) {
	a := slices.Clone(addrs)
	p.discovered.Store(&a)
}

// SetNoHostsReason sets what Send answers while the pool has no host, such
// as "zookeeper unreachable"; "" for the default.
func (p *Pool[S]) SetNoHostsReason(why string) { p.noHosts.Store(&why) }

// apply takes in the last discovered set, and reports whether hosts
// joined. Owner goroutine only.
func (p *Pool[S]) apply() (joined bool) {
	d := p.discovered.Load()
	if d == nil || d == p.applied {
		return false
	}
	p.applied = d
	want := slices.Clone(p.static)
	for _, a := range *d {
		if !slices.Contains(want, a) {
			want = append(want, a)
		}
	}
	hosts := make([]*host[S], 0, len(want))
	for _, a := range want {
		i := slices.IndexFunc(p.hosts, func(h *host[S]) bool { return h.addr == a })
		if i >= 0 {
			hosts = append(hosts, p.hosts[i])
		} else {
			hosts = append(hosts, &host[S]{addr: a})
			joined = true
		}
	}
	for _, h := range p.hosts {
		if !slices.Contains(want, h.addr) && h.conn != nil {
			h.conn.Close()
			h.conn = nil
		}
	}
	p.mu.Lock()
	p.hosts = hosts
	if len(hosts) > 0 {
		p.next %= len(hosts)
	} else {
		p.next = 0
	}
	p.mu.Unlock()
	p.log.Info("hosts changed", "hosts", want)
	return joined
}

// SetBackoff sets the backoff bounds of a failed host.
func (p *Pool[S]) SetBackoff(minBackoff, maxBackoff time.Duration) {
	p.minBackoff, p.maxBackoff = minBackoff, maxBackoff
}

// Addrs returns the hosts of the pool.
func (p *Pool[S]) Addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, len(p.hosts))
	for i, h := range p.hosts {
		out[i] = h.addr
	}
	return out
}

// Hosts returns the health of every host.
func (p *Pool[S]) Hosts() []HostStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]HostStatus, len(p.hosts))
	for i, h := range p.hosts {
		out[i] = HostStatus{Addr: h.addr, Healthy: h.failures == 0, Failures: h.failures, RetryAt: h.retryAt, LastError: h.lastErr}
	}
	return out
}

// pick returns the next host in round robin that is healthy or whose
// backoff has passed, skipping those in tried. When none is and anyway is
// set, it returns the untried host whose backoff ends first: the scheduler
// already backs off between calls to Send, so refusing to try would only add
// delay. Otherwise it returns nil.
func (p *Pool[S]) pick(tried []*host[S], anyway bool) *host[S] {
	now := time.Now()
	var earliest *host[S]
	for range p.hosts {
		h := p.hosts[p.next]
		p.next = (p.next + 1) % len(p.hosts)
		if slices.Contains(tried, h) {
			continue
		}
		if h.failures == 0 || !now.Before(h.retryAt) {
			return h
		}
		if earliest == nil || h.retryAt.Before(earliest.retryAt) {
			earliest = h
		}
	}
	if !anyway {
		return nil
	}
	return earliest
}

func (p *Pool[S]) connect(ctx context.Context, h *host[S]) (*Conn[S], error) {
	if h.conn != nil {
		return h.conn, nil
	}
	return p.dialHost(ctx, h, p.timeout)
}

func (p *Pool[S]) dialHost(ctx context.Context, h *host[S], timeout time.Duration) (*Conn[S], error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := p.dial(dctx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	h.conn = &Conn[S]{Conn: nc, State: p.open(nc), Addr: h.addr, host: h}
	return h.conn, nil
}

// fail closes the connection of h and takes h out for a backoff.
func (p *Pool[S]) fail(h *host[S], err error) {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
	p.backoff(h, err, "host failed")
	p.mu.Lock()
	h.refused = false
	p.mu.Unlock()
}

// backoff takes h out for a backoff that doubles with each failure in a
// row, and records err.
func (p *Pool[S]) backoff(h *host[S], err error, msg string) {
	p.mu.Lock()
	h.failures++
	d := p.minBackoff << min(h.failures-1, 20)
	if d > p.maxBackoff || d <= 0 {
		d = p.maxBackoff
	}
	// Full jitter on the upper half, so that agents that lost the same host
	// at once do not come back in step.
	d = d/2 + rand.N(d/2+1)
	h.retryAt = time.Now().Add(d)
	h.lastErr = err.Error()
	failures := h.failures
	p.mu.Unlock()
	p.log.Warn(msg, "host", h.addr, "failures", failures, "retry_in", d.Round(time.Millisecond), "err", err)
}

// drop closes the connection of h, which broke after answering part of a
// call: the host is up, the next call reconnects.
func (p *Pool[S]) drop(h *host[S], err error) {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
	p.ok(h)
	p.log.Debug("connection broke after answers; reconnecting", "host", h.addr, "err", err)
}

func (p *Pool[S]) ok(h *host[S]) {
	p.mu.Lock()
	was := h.failures
	h.failures, h.retryAt, h.lastErr, h.refused = 0, time.Time{}, "", false
	p.mu.Unlock()
	if was > 0 {
		p.log.Info("host is back", "host", h.addr)
	}
}

// Result is what one attempt on one connection did with the messages it was
// given.
type Result struct {
	// Retry lists the messages not delivered, to send again; Permanent
	// those that can never be delivered. Both hold batch indexes.
	Retry     []int
	Permanent []int
	// Err says why some messages are in Retry or Permanent.
	Err error
	// Broken reports that the connection can no longer be used (an I/O
	// error, a protocol error, a server that said it disconnects): it is
	// closed, and Retry is tried on the next host that is up. Its host is
	// taken out for a backoff only if the attempt answered none of its
	// messages (none left pending).
	Broken bool
	// Refused reports that the host answered but took nothing, asking to
	// be called later (Scribe's TRY_LATER): the connection is kept, the
	// host is taken out for a backoff, and Retry is tried on the next host
	// that is up.
	Refused bool
}

// Attempt sends the messages of the batch listed in pending over c.
type Attempt[S any] func(ctx context.Context, c *Conn[S], pending []int) Result

// Send delivers a batch of n messages with attempt and returns what
// logagent.Output.Send returns: nil, a *logagent.PartialError, or a plain
// error when nothing is known delivered. It tries each host at most once;
// it moves to the next host that is up when a connection fails or a host
// refuses (Result.Refused); what is left then goes back to the scheduler,
// which backs off. Each attempt's I/O is bounded by the pool timeout and by
// ctx.
func (p *Pool[S]) Send(ctx context.Context, n int, attempt Attempt[S]) error {
	if n == 0 {
		return nil
	}
	p.apply()
	if len(p.hosts) == 0 {
		if why := p.noHosts.Load(); why != nil && *why != "" {
			return errors.New("no hosts: " + *why)
		}
		return errors.New("no hosts")
	}
	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	var permanent []int
	var lastErr error
	var tried []*host[S]
	for len(pending) > 0 && len(tried) < len(p.hosts) {
		if err := ctx.Err(); err != nil {
			lastErr = err
			break
		}
		// The first host is tried even when every host is in backoff; a
		// failover goes only to a host that is up.
		h := p.pick(tried, len(tried) == 0)
		if h == nil {
			break
		}
		tried = append(tried, h)
		c, err := p.connect(ctx, h)
		if err != nil {
			err = fmt.Errorf("connect %s: %w", h.addr, err)
			if ctx.Err() == nil {
				p.fail(h, err)
			}
			lastErr = err
			continue
		}
		r := p.run(ctx, c, pending, attempt)
		answered := len(r.Retry) < len(pending)
		permanent = append(permanent, r.Permanent...)
		pending = r.Retry
		if r.Err != nil {
			lastErr = fmt.Errorf("%s: %w", h.addr, r.Err)
		}
		switch {
		case r.Broken && ctx.Err() != nil:
			// Cancelled by the caller: the host did nothing wrong.
			h.conn.Close()
			h.conn = nil
		case r.Broken && answered:
			p.drop(h, r.Err)
		case r.Broken:
			p.fail(h, r.Err)
		case r.Refused:
			p.backoff(h, r.Err, "host refused; trying later")
			p.mu.Lock()
			h.refused = true
			p.mu.Unlock()
		default:
			p.ok(h)
		}
		if r.Broken || r.Refused {
			continue
		}
		break
	}
	if len(pending) == 0 && len(permanent) == 0 {
		return nil
	}
	if lastErr == nil {
		lastErr = errors.New("not delivered")
	}
	if len(pending) == n {
		return lastErr
	}
	slices.Sort(pending)
	slices.Sort(permanent)
	return &logagent.PartialError{Retry: pending, Permanent: permanent, Err: lastErr}
}

// probeTimeout bounds the connection attempt of a probe: a host that takes
// longer to accept is not back yet.
const probeTimeout = 2 * time.Second

// Probe reports, cheaply, whether a send could now get through where the
// last one could not: nil if discovery brought new hosts, or if a failed
// host accepts a connection now (the
// connection is kept for the next send, and the host's backoff ends). A
// host that refused ("try later") is left to its backoff: it asked for it.
// With no failed host to probe (a send failed on a host that is up, such
// as a full queue) it returns an error: nothing has changed that a
// connection could show. Probe is called from the goroutine that calls
// Send, between sends.
func (p *Pool[S]) Probe(ctx context.Context) error {
	if p.apply() {
		return nil // hosts joined (discovery): worth a send now
	}
	var down []*host[S]
	for _, h := range p.hosts {
		p.mu.Lock()
		failed, refused := h.failures > 0, h.refused
		p.mu.Unlock()
		if failed && !refused && h.conn == nil {
			down = append(down, h)
		}
	}
	var errs []error
	for _, h := range down {
		if _, err := p.dialHost(ctx, h, min(p.timeout, probeTimeout)); err != nil {
			errs = append(errs, fmt.Errorf("probe %s: %w", h.addr, err))
			continue
		}
		p.mu.Lock()
		h.retryAt = time.Now()
		p.mu.Unlock()
		p.log.Info("host accepts connections again", "host", h.addr)
		return nil
	}
	if len(errs) == 0 {
		return errors.New("no host to probe")
	}
	return errors.Join(errs...)
}

// run calls attempt with the connection's deadline set to the pool timeout
// (or ctx's deadline, if sooner), and makes I/O return at once when ctx is
// done.
func (p *Pool[S]) run(ctx context.Context, c *Conn[S], pending []int, attempt Attempt[S]) Result {
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	r := attempt(ctx, c, pending)
	if !stop() && !r.Broken {
		// ctx was cancelled while the attempt ran: the connection's state
		// is unknown, do not reuse it.
		r.Broken = true
		if r.Err == nil {
			r.Err = ctx.Err()
		}
	}
	return r
}

// Close closes every connection.
func (p *Pool[S]) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.hosts {
		if h.conn != nil {
			h.conn.Close()
			h.conn = nil
		}
	}
	return nil
}

// ParseHosts checks a hosts list and returns it as host:port addresses,
// adding defaultPort where a port is left out (0: the port is required).
// Problems are
// *logagent.FieldError values for "hosts" or "hosts[i]", one per host, for
// the caller to join with its own.
func ParseHosts(hosts []string, defaultPort int) ([]string, []error) {
	if len(hosts) == 0 {
		return nil, []error{logagent.FieldErrorf("hosts", "must list at least one host:port")}
	}
	var errs []error
	out := make([]string, 0, len(hosts))
	seen := map[string]bool{}
	for i, h := range hosts {
		field := fmt.Sprintf("hosts[%d]", i)
		addr, err := parseHost(h, defaultPort)
		if err != nil {
			errs = append(errs, logagent.FieldErrorf(field, "%v", err))
			continue
		}
		if seen[addr] {
			errs = append(errs, logagent.FieldErrorf(field, "%s is listed twice", addr))
			continue
		}
		seen[addr] = true
		out = append(out, addr)
	}
	return out, errs
}

func parseHost(s string, defaultPort int) (string, error) {
	if s == "" {
		return "", errors.New("empty host")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole string is the host (an IPv6 literal may be
		// written bare or in brackets).
		if defaultPort == 0 {
			return "", fmt.Errorf("%q has no port: write host:port", s)
		}
		host, port = s, strconv.Itoa(defaultPort)
		if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1]
		}
		if net.ParseIP(host) == nil && !validHostname(host) {
			return "", fmt.Errorf("%q is not host or host:port", s)
		}
	}
	if host == "" {
		return "", fmt.Errorf("%q has no host", s)
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return "", fmt.Errorf("%q is not a valid host name", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range []byte(h) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// Check resolves the host names of addrs with net.DefaultResolver, without
// connecting. It returns every failure, joined.
func Check(ctx context.Context, addrs []string) error {
	var errs []error
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if net.ParseIP(host) != nil {
			continue
		}
		if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", host, err))
		}
	}
	return errors.Join(errs...)
}
