// Package flume ships messages to Flume NG Thrift sources: framed transport,
// compact (Flume's default) or binary protocol, method
// ThriftSourceProtocol.appendBatch(list<ThriftFlumeEvent>) -> Status.
//
// Each event's body is the message body; its headers are timestamp (ms),
// host, path, offset, category, input, and the input's fields (a field named
// like one of those is left out).
//
// Delivery is at least once. Flume commits each appendBatch call in one
// channel transaction: OK means every event of the call is in the channel,
// FAILED (the channel is full) or any other status that none is, and the
// events are sent again after a backoff. A batch is split into several calls
// so that each frame stays under the 16,384,000 bytes a Flume Thrift source
// accepts; when a later call fails after an earlier one succeeded, only the
// events not committed are retried. A connection that breaks during a call
// leaves that call's events unknown: they are sent again, on another host if
// one is up, and may arrive twice.
package flume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/outputs/hostpool"
)

// MaxFrameBytes is the largest frame a Flume Thrift source reads
// (TFramedTransport's default maximum length in Flume).
const MaxFrameBytes = 16_384_000

// frameBudget is what one call's events may take: the frame limit less the
// call's own envelope (message header, method name, argument struct), with
// room to spare.
const frameBudget = MaxFrameBytes - 1024

// maxBody is MaxMessageBytes: the frame limit less room for one event's
// headers.
const maxBody = MaxFrameBytes - 64<<10

// Flume's Status values.
const (
	statusOK     = 0
	statusFailed = 1
)

var statusNames = []string{"OK", "FAILED", "ERROR", "UNKNOWN"}

// Config is the configuration of a flume output.
type Config struct {
	// Hosts are the Flume Thrift sources, host:port (the port is
	// required: a Thrift source has no usual one). Batches go round robin
	// to the hosts that are up.
	Hosts []string `yaml:"hosts"`
	// Protocol is the source's Thrift protocol: compact (Flume's default)
	// or binary.
	Protocol string `yaml:"protocol"`
	// Timeout bounds connecting and each call (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Protocol: "compact", Timeout: 10 * time.Second}
}

// Validate checks c; problems are *logagent.FieldError values, joined.
func (c *Config) Validate() error {
	_, errs := hostpool.ParseHosts(c.Hosts, 0)
	if c.Protocol != "compact" && c.Protocol != "binary" {
		errs = append(errs, logagent.FieldErrorf("protocol", "must be compact or binary, not %q", c.Protocol))
	}
	if c.Timeout <= 0 {
		errs = append(errs, logagent.FieldErrorf("timeout", "must be positive, such as 10s"))
	}
	return errors.Join(errs...)
}

// MaxMessageBytes is the largest body that fits one Flume frame with its
// headers.
func (c *Config) MaxMessageBytes() int { return maxBody }

// ErrFailed is returned when Flume answers FAILED: the channel refused the
// events (it is full, or its sink is stuck).
var ErrFailed = errors.New("flume answered FAILED")

// Output sends batches to Flume.
type Output struct {
	id       string
	log      *slog.Logger
	protocol string
	pool     *hostpool.Pool[*client]
}

// client is the state kept on one connection.
type client struct {
	*thriftrpc.Client
	num []byte // scratch for number headers
}

// New returns an output for c, which must be valid. It does no I/O.
func New(id string, c Config, log *slog.Logger) (*Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("output", id)
	addrs, _ := hostpool.ParseHosts(c.Hosts, 0)
	proto := thriftrpc.Protocol(c.Protocol)
	open := func(nc net.Conn) *client {
		return &client{Client: thriftrpc.New(nc, proto), num: make([]byte, 0, 24)}
	}
	return &Output{id: id, log: log, protocol: c.Protocol, pool: hostpool.New(addrs, c.Timeout, open, log)}, nil
}

// Send delivers batch in as few appendBatch calls as the frame limit
// allows, failing over to the next host if the connection breaks.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	return o.pool.Send(ctx, len(batch), func(ctx context.Context, c *hostpool.Conn[*client], pending []int) hostpool.Result {
		return o.attempt(ctx, c.State, batch, pending)
	})
}

func (o *Output) attempt(ctx context.Context, c *client, batch []logagent.Message, pending []int) hostpool.Result {
	var tooBig []int
	var tooBigErr error
	chunk := make([]int, 0, len(pending))
	for len(pending) > 0 {
		// Take events while they fit one frame; an event that cannot fit
		// any frame is permanent.
		chunk = chunk[:0]
		n, size := 0, 0
		for ; n < len(pending); n++ {
			i := pending[n]
			s := eventSize(&batch[i])
			if s > frameBudget {
				tooBig = append(tooBig, i)
				tooBigErr = fmt.Errorf("event of %d bytes does not fit Flume's %d-byte frame", s, MaxFrameBytes)
				o.log.Error("dropping message too large for Flume", "bytes", s, "path", batch[i].Source.Path, "offset", batch[i].Offset)
				continue
			}
			if size+s > frameBudget {
				break
			}
			chunk = append(chunk, i)
			size += s
		}
		rest := pending[n:]
		if len(chunk) == 0 {
			pending = rest
			continue
		}
		status, err := c.Call(ctx, "appendBatch", func(p thrift.TProtocol) error {
			return writeAppendBatchArgs(ctx, p, c.num, batch, chunk)
		})
		if err == nil && status != statusOK {
			name := strconv.Itoa(int(status))
			if status >= 0 && int(status) < len(statusNames) {
				name = statusNames[status]
			}
			if status == statusFailed {
				err = ErrFailed
			} else {
				err = fmt.Errorf("flume answered %s", name)
			}
		}
		if err != nil {
			retry := append(append([]int(nil), chunk...), rest...)
			return hostpool.Result{Retry: retry, Permanent: tooBig, Err: err, Broken: thriftrpc.IsBroken(err)}
		}
		pending = rest
	}
	return hostpool.Result{Permanent: tooBig, Err: tooBigErr}
}

// Header names set on every event.
const (
	hTimestamp = "timestamp"
	hHost      = "host"
	hPath      = "path"
	hOffset    = "offset"
	hCategory  = "category"
	hInput     = "input"
)

func fixedHeader(k string) bool {
	switch k {
	case hTimestamp, hHost, hPath, hOffset, hCategory, hInput:
		return true
	}
	return false
}

// eventSize bounds the encoded size of m's event in either protocol: the
// binary protocol's (fixed 4-byte lengths, 3-byte field headers), which the
// compact protocol never exceeds for strings under 256 MiB.
func eventSize(m *logagent.Message) int {
	// struct: field 1 header, map header, field 2 header, body length,
	// stop; each header entry: two lengths.
	const numLen = 20 // an int64 in decimal
	s := 3 + 6 + 3 + 4 + 1 + len(m.Body)
	src := m.Source
	s += 8*6 + len(hTimestamp) + numLen + len(hHost) + len(src.Host) + len(hPath) + len(src.Path) +
		len(hOffset) + numLen + len(hCategory) + len(src.Category) + len(hInput) + len(src.Input)
	for k, v := range src.Fields {
		if !fixedHeader(k) {
			s += 8 + len(k) + len(v)
		}
	}
	return s
}

// writeAppendBatchArgs writes the arguments of appendBatch:
// 1: list<ThriftFlumeEvent> events, where an event is
// {1: map<string,string> headers, 2: binary body}. A string and a binary
// are the same on the wire, so header values built in num go out with
// WriteBinary, without a string conversion.
func writeAppendBatchArgs(ctx context.Context, p thrift.TProtocol, num []byte, batch []logagent.Message, idx []int) error {
	if err := p.WriteFieldBegin(ctx, "events", thrift.LIST, 1); err != nil {
		return err
	}
	if err := p.WriteListBegin(ctx, thrift.STRUCT, len(idx)); err != nil {
		return err
	}
	for _, i := range idx {
		m := &batch[i]
		src := m.Source
		if err := p.WriteStructBegin(ctx, "ThriftFlumeEvent"); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "headers", thrift.MAP, 1); err != nil {
			return err
		}
		n := 6
		for k := range src.Fields {
			if !fixedHeader(k) {
				n++
			}
		}
		if err := p.WriteMapBegin(ctx, thrift.STRING, thrift.STRING, n); err != nil {
			return err
		}
		kv := func(k, v string) error {
			if err := p.WriteString(ctx, k); err != nil {
				return err
			}
			return p.WriteString(ctx, v)
		}
		kn := func(k string, v int64) error {
			if err := p.WriteString(ctx, k); err != nil {
				return err
			}
			return p.WriteBinary(ctx, strconv.AppendInt(num[:0], v, 10))
		}
		if err := kn(hTimestamp, m.Time.UnixMilli()); err != nil {
			return err
		}
		if err := kv(hHost, src.Host); err != nil {
			return err
		}
		if err := kv(hPath, src.Path); err != nil {
			return err
		}
		if err := kn(hOffset, m.Offset); err != nil {
			return err
		}
		if err := kv(hCategory, src.Category); err != nil {
			return err
		}
		if err := kv(hInput, src.Input); err != nil {
			return err
		}
		for k, v := range src.Fields {
			if fixedHeader(k) {
				continue
			}
			if err := kv(k, v); err != nil {
				return err
			}
		}
		if err := p.WriteMapEnd(ctx); err != nil {
			return err
		}
		if err := p.WriteFieldEnd(ctx); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "body", thrift.STRING, 2); err != nil {
			return err
		}
		if err := p.WriteBinary(ctx, m.Body); err != nil {
			return err
		}
		if err := p.WriteFieldEnd(ctx); err != nil {
			return err
		}
		if err := p.WriteFieldStop(ctx); err != nil {
			return err
		}
		if err := p.WriteStructEnd(ctx); err != nil {
			return err
		}
	}
	if err := p.WriteListEnd(ctx); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}

// Close closes the connections.
func (o *Output) Close() error { return o.pool.Close() }

// Hosts returns the health of each host, for metrics.
func (o *Output) Hosts() []hostpool.HostStatus { return o.pool.Hosts() }

// Describe returns the hosts and protocol, for --dry-run.
func (o *Output) Describe() string {
	return "hosts " + strings.Join(o.pool.Addrs(), ", ") + " (flume thrift source: framed, " + o.protocol + ")"
}

// Destination returns the category header m carries: where it goes past
// the Flume source is up to the Flume agent's configuration.
func (o *Output) Destination(m *logagent.Message) string {
	if m.Source == nil {
		return "header category="
	}
	return "header category=" + m.Source.Category
}

// Check resolves the host names, without connecting.
func (o *Output) Check(ctx context.Context) error { return hostpool.Check(ctx, o.pool.Addrs()) }

var (
	_ logagent.Output    = (*Output)(nil)
	_ logagent.Describer = (*Output)(nil)
	_ logagent.Checker   = (*Output)(nil)
)
