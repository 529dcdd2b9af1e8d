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
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/internal/zookeeper"
	"github.com/logagent/logagent/outputs/hostpool"
)

// MaxFrameBytes is the largest frame a Flume Thrift source reads
// (TFramedTransport's default maximum length in Flume).
const MaxFrameBytes = 16_384_000

// frameEnvelope is what a call's frame holds besides its events (message
// header, method name, argument struct), with room to spare.
const frameEnvelope = 1024

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
	// ZooKeeper, when set, finds (more) hosts in ZooKeeper.
	ZooKeeper *zookeeper.Config `yaml:"zookeeper"`
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
	errs := zookeeper.ValidateHosts(c.Hosts, 0, c.ZooKeeper)
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
	hostpool.Hosted // Hosts, Probe, Describe, Check, Close
	id              string
	log             *slog.Logger
	pool            *hostpool.Pool[*client]
	enc             *encoder
	// maxFrame is the largest frame sent: MaxFrameBytes (tests lower it,
	// so as to split batches without moving tens of megabytes).
	maxFrame int
	zk       *zookeeper.Discovery // nil without zookeeper:
}

// client is the state kept on one connection.
type client struct {
	*thriftrpc.Client
}

// New returns an output for c, which must be valid. It does no I/O.
func New(id string, c Config, log *slog.Logger) (*Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addrs, _ := hostpool.ParseHosts(c.Hosts, 0)
	proto := thriftrpc.Protocol(c.Protocol)
	open := func(nc net.Conn) *client {
		return &client{Client: thriftrpc.New(nc, proto)}
	}
	var path string
	if c.ZooKeeper != nil {
		path = c.ZooKeeper.Path
	}
	o := &Output{id: id, log: log, pool: hostpool.New(addrs, c.Timeout, open, log), enc: newEncoder(c.Protocol), maxFrame: MaxFrameBytes,
		zk: zookeeper.NewDiscovery(c.ZooKeeper, path, log)}
	o.Hosted = hostpool.NewHosted(o.pool, o.zk, "flume thrift source: framed, "+c.Protocol)
	return o, nil
}

// Send delivers batch in as few appendBatch calls as the frame limit
// allows, failing over to the next host if the connection breaks.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	o.StartDiscovery()
	return o.pool.Send(ctx, len(batch), func(ctx context.Context, c *hostpool.Conn[*client], pending []int) hostpool.Result {
		return o.attempt(ctx, c.State, batch, pending)
	})
}

func (o *Output) attempt(ctx context.Context, c *client, batch []logagent.Message, pending []int) hostpool.Result {
	var tooBig []int
	var tooBigErr error
	// budget is what one call's events may take.
	budget := o.maxFrame - frameEnvelope
	chunk := make([]int, 0, len(pending))
	for len(pending) > 0 {
		// Take events while they fit one frame; an event that cannot fit
		// any frame is permanent.
		chunk = chunk[:0]
		n, size := 0, 0
		for ; n < len(pending); n++ {
			i := pending[n]
			s := o.enc.eventSize(&batch[i])
			if s > budget {
				tooBig = append(tooBig, i)
				tooBigErr = fmt.Errorf("event of %d bytes does not fit Flume's %d-byte frame", s, o.maxFrame)
				o.log.Error("dropping message too large for Flume", "bytes", s, "path", batch[i].Source.Path, "offset", batch[i].Offset)
				continue
			}
			if size+s > budget {
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
			return writeAppendBatchArgs(ctx, p, c.Framed, o.enc, batch, chunk)
		})
		refused := false
		if err == nil && status != statusOK {
			refused = true
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
			// A status other than OK: the host is up but its channel
			// took nothing; it backs off and another host that is up
			// gets the events.
			return hostpool.Result{Retry: retry, Permanent: tooBig, Err: err, Broken: thriftrpc.IsBroken(err), Refused: refused}
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

// maxSources bounds the per-Source cache of encoded headers: a
// long-running agent sees a new Source for every rotated file.
const maxSources = 1024

// encoder writes events straight to the frame, in the binary or compact
// protocol, without going through the protocol API for each field: the
// bytes of an event that depend only on its Source (the field headers,
// the header map's header, the host, path, category, input and field
// headers) are encoded once per Source and copied, and only the
// timestamp, the offset and the body are encoded per event. An event is
// ThriftFlumeEvent {1: map<string,string> headers, 2: binary body}, its
// headers in the order timestamp, host, path, offset, category, input,
// then the input's fields.
//
// An Output's encoder is used by one Send at a time.
type encoder struct {
	compact bool
	srcs    map[*logagent.Source]*srcEvent
	// last is the Source of the previous event: consecutive events mostly
	// share one.
	last    *logagent.Source
	lastEnc *srcEvent
	scratch []byte
}

// srcEvent is an event of one Source, encoded but for its timestamp,
// offset and body: a, the timestamp's value, b, the offset's value, c,
// the body's length, the body, and the struct's stop byte.
type srcEvent struct {
	a []byte // field 1 (map) header, map header, key "timestamp"
	b []byte // host and path entries, key "offset"
	c []byte // category, input and field entries, field 2 (binary) header
}

// maxVarBytes bounds what an event adds to its Source's part and its
// body: two numbers in decimal (at most 20 bytes each) with their lengths,
// the body's length and the stop byte.
const maxVarBytes = 2*(5+20) + 5 + 1

func newEncoder(protocol string) *encoder {
	return &encoder{compact: protocol == "compact", srcs: map[*logagent.Source]*srcEvent{}}
}

// source returns the encoded part of src's events.
func (e *encoder) source(src *logagent.Source) *srcEvent {
	if src == e.last && e.lastEnc != nil {
		return e.lastEnc
	}
	se, ok := e.srcs[src]
	if !ok {
		if len(e.srcs) >= maxSources {
			clear(e.srcs)
		}
		se = e.encodeSource(src)
		e.srcs[src] = se
	}
	e.last, e.lastEnc = src, se
	return se
}

func (e *encoder) encodeSource(src *logagent.Source) *srcEvent {
	if src == nil {
		src = &logagent.Source{}
	}
	n := 6
	for k := range src.Fields {
		if !fixedHeader(k) {
			n++
		}
	}
	se := &srcEvent{}
	// Field 1, a map of strings to strings.
	if e.compact {
		se.a = append(se.a, 1<<4|compactMap)
		if n == 0 {
			se.a = append(se.a, 0)
		} else {
			se.a = binary.AppendUvarint(se.a, uint64(n))
			se.a = append(se.a, compactBinary<<4|compactBinary)
		}
	} else {
		se.a = append(se.a, byte(thrift.MAP), 0, 1, byte(thrift.STRING), byte(thrift.STRING))
		se.a = binary.BigEndian.AppendUint32(se.a, uint32(n))
	}
	se.a = e.appendString(se.a, hTimestamp)
	se.b = e.appendString(se.b, hHost)
	se.b = e.appendString(se.b, src.Host)
	se.b = e.appendString(se.b, hPath)
	se.b = e.appendString(se.b, src.Path)
	se.b = e.appendString(se.b, hOffset)
	se.c = e.appendString(se.c, hCategory)
	se.c = e.appendString(se.c, src.Category)
	se.c = e.appendString(se.c, hInput)
	se.c = e.appendString(se.c, src.Input)
	for k, v := range src.Fields {
		if !fixedHeader(k) {
			se.c = e.appendString(se.c, k)
			se.c = e.appendString(se.c, v)
		}
	}
	// Field 2, binary.
	if e.compact {
		se.c = append(se.c, 1<<4|compactBinary)
	} else {
		se.c = append(se.c, byte(thrift.STRING), 0, 2)
	}
	return se
}

// Compact protocol type codes.
const (
	compactBinary = 8
	compactMap    = 11
)

func (e *encoder) appendLen(b []byte, n int) []byte {
	if e.compact {
		return binary.AppendUvarint(b, uint64(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

func (e *encoder) appendString(b []byte, s string) []byte {
	return append(e.appendLen(b, len(s)), s...)
}

func (e *encoder) appendNumber(b []byte, v int64) []byte {
	// The decimal digits go after room for their length, which is then
	// written in front of them: at most 20 digits, a 1-byte varint.
	if e.compact {
		b = append(b, 0)
		at := len(b)
		b = strconv.AppendInt(b, v, 10)
		b[at-1] = byte(len(b) - at)
		return b
	}
	b = append(b, 0, 0, 0, 0)
	at := len(b)
	b = strconv.AppendInt(b, v, 10)
	binary.BigEndian.PutUint32(b[at-4:], uint32(len(b)-at))
	return b
}

// eventSize bounds the encoded size of m's event.
func (e *encoder) eventSize(m *logagent.Message) int {
	se := e.source(m.Source)
	return len(se.a) + len(se.b) + len(se.c) + maxVarBytes + len(m.Body)
}

// writeEvents writes the events of batch[idx] to w, the elements of the
// list begun by the protocol writing to w.
func (e *encoder) writeEvents(w *thrift.TFramedTransport, batch []logagent.Message, idx []int) error {
	for _, i := range idx {
		m := &batch[i]
		se := e.source(m.Source)
		b := append(e.scratch[:0], se.a...)
		b = e.appendNumber(b, m.ReadNano/int64(time.Millisecond))
		b = append(b, se.b...)
		b = e.appendNumber(b, m.Offset)
		b = append(b, se.c...)
		b = e.appendLen(b, len(m.Body))
		e.scratch = b
		if _, err := w.Write(b); err != nil {
			return err
		}
		if _, err := w.Write(m.Body); err != nil {
			return err
		}
		if err := w.WriteByte(0); err != nil { // the event's stop
			return err
		}
	}
	return nil
}

// writeAppendBatchArgs writes the arguments of appendBatch:
// 1: list<ThriftFlumeEvent> events.
func writeAppendBatchArgs(ctx context.Context, p thrift.TProtocol, w *thrift.TFramedTransport, e *encoder, batch []logagent.Message, idx []int) error {
	if err := p.WriteFieldBegin(ctx, "events", thrift.LIST, 1); err != nil {
		return err
	}
	if err := p.WriteListBegin(ctx, thrift.STRUCT, len(idx)); err != nil {
		return err
	}
	if err := e.writeEvents(w, batch, idx); err != nil {
		return err
	}
	if err := p.WriteListEnd(ctx); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}

// Discovery returns the output's ZooKeeper discovery, nil without one.
func (o *Output) Discovery() *zookeeper.Discovery { return o.zk }

// Destination returns the category header m carries: where it goes past
// the Flume source is up to the Flume agent's configuration.
func (o *Output) Destination(m *logagent.Message) string {
	if m.Source == nil {
		return "header category="
	}
	return "header category=" + m.Source.Category
}

var (
	_ logagent.Output    = (*Output)(nil)
	_ logagent.Describer = (*Output)(nil)
	_ logagent.Checker   = (*Output)(nil)
)
