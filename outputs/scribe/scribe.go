// Package scribe ships messages to Scribe servers (or anything that speaks
// Scribe, such as Flume's Scribe source): Thrift framed transport, binary
// protocol, method Log(list<LogEntry>) -> ResultCode.
//
// Delivery is at least once. Log answers for the whole call: OK means every
// entry was accepted, TRY_LATER that none was (the batch is returned as a
// plain error and the scheduler sends it again after a backoff). A
// connection that breaks during a call leaves its batch unknown: it is sent
// again, on another host if one is up, so a batch in flight on a host that
// died may arrive twice.
package scribe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/internal/zookeeper"
	"github.com/logagent/logagent/outputs/hostpool"
)

// DefaultPort is Scribe's usual port, used for hosts given without one.
const DefaultPort = 1463

// Scribe's ResultCode values.
const (
	resultOK       = 0
	resultTryLater = 1
)

// Config is the configuration of a scribe output.
type Config struct {
	// Hosts are the Scribe servers, host or host:port (port 1463 if left
	// out). Batches go round robin to the hosts that are up.
	Hosts []string `yaml:"hosts"`
	// ZooKeeper, when set, finds (more) hosts in ZooKeeper.
	ZooKeeper *zookeeper.Config `yaml:"zookeeper"`
	// Timeout bounds connecting and each call (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Timeout: 10 * time.Second}
}

// Validate checks c; problems are *logagent.FieldError values, joined.
func (c *Config) Validate() error {
	errs := zookeeper.ValidateHosts(c.Hosts, DefaultPort, c.ZooKeeper)
	if c.Timeout <= 0 {
		errs = append(errs, logagent.FieldErrorf("timeout", "must be positive, such as 10s"))
	}
	return errors.Join(errs...)
}

// ErrTryLater is returned when Scribe answers TRY_LATER.
var ErrTryLater = errors.New("scribe answered TRY_LATER")

// Output sends batches to Scribe.
type Output struct {
	hostpool.Hosted // Hosts, Probe, Describe, Check, Close
	id              string
	log             *slog.Logger
	pool            *hostpool.Pool[*thriftrpc.Client]
	zk              *zookeeper.Discovery // nil without zookeeper:
}

// New returns an output for c, which must be valid. It does no I/O.
func New(id string, c Config, log *slog.Logger) (*Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addrs, _ := hostpool.ParseHosts(c.Hosts, DefaultPort)
	open := func(nc net.Conn) *thriftrpc.Client { return thriftrpc.New(nc, thriftrpc.Binary) }
	o := &Output{id: id, log: log, pool: hostpool.New(addrs, c.Timeout, open, log), zk: zookeeper.NewDiscovery(c.ZooKeeper, pathOf(c.ZooKeeper), log)}
	o.Hosted = hostpool.NewHosted(o.pool, o.zk, "scribe: thrift framed, binary")
	return o, nil
}

// Send delivers batch with one Log call, failing over to the next host if
// the connection breaks.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	o.StartDiscovery()
	return o.pool.Send(ctx, len(batch), func(ctx context.Context, c *hostpool.Conn[*thriftrpc.Client], pending []int) hostpool.Result {
		return o.attempt(ctx, c.State, batch, pending)
	})
}

func (o *Output) attempt(ctx context.Context, c *thriftrpc.Client, batch []logagent.Message, pending []int) hostpool.Result {
	// Scribe drops entries of an empty category and still answers OK: such
	// a message could never be delivered, so say so instead.
	var bad []int
	send := pending
	for k, i := range pending {
		if batch[i].Source == nil || batch[i].Source.Category == "" {
			if bad == nil {
				send = append([]int(nil), pending[:k]...)
			}
			bad = append(bad, i)
		} else if bad != nil {
			send = append(send, i)
		}
	}
	var badErr error
	if bad != nil {
		badErr = errors.New("message without a category")
		o.log.Error("dropping messages without a category", "count", len(bad))
	}
	if len(send) == 0 {
		return hostpool.Result{Permanent: bad, Err: badErr}
	}
	code, err := c.Call(ctx, "Log", func(p thrift.TProtocol) error {
		return writeLogArgs(ctx, p, c.Framed, batch, send)
	})
	switch {
	case err != nil:
		return hostpool.Result{Retry: send, Permanent: bad, Err: err, Broken: thriftrpc.IsBroken(err)}
	case code == resultOK:
		return hostpool.Result{Permanent: bad, Err: badErr}
	case code == resultTryLater:
		// The host is up but took nothing: it backs off, and another
		// host that is up gets the messages.
		return hostpool.Result{Retry: send, Permanent: bad, Err: ErrTryLater, Refused: true}
	default:
		return hostpool.Result{Retry: send, Permanent: bad, Err: fmt.Errorf("scribe answered unknown result code %d", code), Refused: true}
	}
}

// writeLogArgs writes the arguments of Log: 1: list<LogEntry> messages,
// where a LogEntry is {1: string category, 2: string message}. Each
// message is written as body + "\n" without building that string.
//
// The entries are written straight to the framed transport in the binary
// protocol, not through the protocol API field by field: that is a dozen
// interface calls an entry, which cost more than copying the entry's
// bytes, for every line the agent ships. Per entry it writes the bytes up
// to the message's length, which depend only on the category and are kept
// from one entry to the next while the category is the same, then the
// length, the body, the newline and the struct's stop byte. The bytes are the
// protocol API's (TestEncode).
func writeLogArgs(ctx context.Context, p thrift.TProtocol, framed *thrift.TFramedTransport, batch []logagent.Message, idx []int) error {
	if err := p.WriteFieldBegin(ctx, "messages", thrift.LIST, 1); err != nil {
		return err
	}
	if err := p.WriteListBegin(ctx, thrift.STRUCT, len(idx)); err != nil {
		return err
	}
	var scratch [64]byte
	var cat string
	var prefix []byte // field 1, the category, field 2's header
	for k, i := range idx {
		m := &batch[i]
		if k == 0 || m.Source.Category != cat {
			cat = m.Source.Category
			prefix = append(scratch[:0], byte(thrift.STRING), 0, 1)
			prefix = binary.BigEndian.AppendUint32(prefix, uint32(len(cat)))
			prefix = append(prefix, cat...)
			prefix = append(prefix, byte(thrift.STRING), 0, 2)
		}
		if _, err := framed.Write(prefix); err != nil {
			return err
		}
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(m.Body)+1))
		if _, err := framed.Write(n[:]); err != nil {
			return err
		}
		if _, err := framed.Write(m.Body); err != nil {
			return err
		}
		if _, err := framed.Write(entryEnd); err != nil {
			return err
		}
	}
	if err := p.WriteListEnd(ctx); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}

// entryEnd ends an entry: the message's newline, the struct's stop.
var entryEnd = []byte{'\n', 0}

// Discovery returns the output's ZooKeeper discovery, nil without one.
func (o *Output) Discovery() *zookeeper.Discovery { return o.zk }

// Destination returns the Scribe category m goes to.
func (o *Output) Destination(m *logagent.Message) string {
	if m.Source == nil || m.Source.Category == "" {
		return "nowhere: no category"
	}
	return "category " + m.Source.Category
}

func pathOf(c *zookeeper.Config) string {
	if c == nil {
		return ""
	}
	return c.Path
}

var (
	_ logagent.Output    = (*Output)(nil)
	_ logagent.Describer = (*Output)(nil)
	_ logagent.Checker   = (*Output)(nil)
)
