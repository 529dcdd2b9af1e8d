package hostpool

import (
	"context"
	"errors"
	"strings"
)

// Target is what a Discovery feeds: a Pool's discovered hosts.
type Target interface {
	SetAddrs(addrs []string)
	SetNoHostsReason(why string)
}

// Discovery finds hosts for a pool besides the configured ones
// (zookeeper.Discovery). Its methods must be safe to call on a nil value,
// which stands for no discovery.
type Discovery interface {
	// Start starts feeding t, once; the first Send calls it.
	Start(t Target)
	// Stop stops feeding and waits for whatever Start started.
	Stop()
	// Describe follows the output's own description, for --dry-run.
	Describe() string
	// Check reports why discovery cannot find hosts now, for --dry-run.
	Check() error
}

// pool is what Hosted needs of a Pool, whatever its connection state.
type pool interface {
	Target
	Addrs() []string
	Hosts() []HostStatus
	Probe(ctx context.Context) error
	Close() error
}

// Hosted is what every output that sends through a Pool has in common:
// embedded in the output, it gives it Hosts, Probe, Describe, Check and
// Close, and starts the discovery on the first Send (StartDiscovery).
type Hosted struct {
	pool     pool
	disc     Discovery
	protocol string
}

// NewHosted returns the shared part of an output sending through p, whose
// hosts disc adds to (nil or a nil *zookeeper.Discovery for none).
// protocol names the output's type and wire protocol in Describe, such as
// "scribe: thrift framed, binary".
func NewHosted[S any](p *Pool[S], disc Discovery, protocol string) Hosted {
	return Hosted{pool: p, disc: disc, protocol: protocol}
}

// StartDiscovery starts the discovery, once; Send calls it so that
// building an output (as --dry-run does) starts nothing.
func (h *Hosted) StartDiscovery() {
	if h.disc != nil {
		h.disc.Start(h.pool)
	}
}

// Close stops the discovery and closes the connections.
func (h *Hosted) Close() error {
	if h.disc != nil {
		h.disc.Stop()
	}
	return h.pool.Close()
}

// Hosts returns the health of each host, for metrics.
func (h *Hosted) Hosts() []HostStatus { return h.pool.Hosts() }

// Probe reports whether a send could get through now (Pool.Probe).
func (h *Hosted) Probe(ctx context.Context) error { return h.pool.Probe(ctx) }

// Describe returns the hosts and protocol, then what the discovery
// found, for --dry-run.
func (h *Hosted) Describe() string {
	d := "hosts " + strings.Join(h.pool.Addrs(), ", ") + " (" + h.protocol + ")"
	if h.disc != nil {
		d += h.disc.Describe()
	}
	return d
}

// Check resolves the host names, without connecting, and reports what
// keeps the discovery from listing hosts.
func (h *Hosted) Check(ctx context.Context) error {
	err := Check(ctx, h.pool.Addrs())
	if h.disc != nil {
		err = errors.Join(err, h.disc.Check())
	}
	return err
}
