// Package kestrel ships messages to Kestrel queues, one item per message,
// queue = the message's category.
//
// With protocol memcache (the default, port 22133) each message is a
// memcache `set <queue> 0 <expiry> <bytes>`, pipelined in windows, and each
// answer decides that message alone:
//   - STORED: delivered;
//   - NOT_STORED (the queue is full and refuses items): sent again later;
//   - CLIENT_ERROR (a bad or oversized item): can never be delivered, counted
//     and logged by the scheduler;
//   - SERVER_ERROR (the server disconnects after it) or a broken connection:
//     the unanswered messages are sent again, on another host if one is up.
//
// With protocol thrift (port 2229) the messages of each queue go in one
// Kestrel.put call over framed transport and binary protocol; put returns
// how many items, from the first, were put, and the rest are sent again.
//
// Delivery is at least once: the messages in flight on a connection that
// broke may arrive twice.
package kestrel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/outputs/hostpool"
)

// Default ports, used for hosts given without one.
const (
	DefaultMemcachePort = 22133
	DefaultThriftPort   = 2229
)

// maxExpiry is the longest expiry: memcache reads a larger one as an
// absolute time, and Thrift's expiration_msec is an i32.
const maxExpiry = 30 * 24 * time.Hour

// Config is the configuration of a kestrel output.
type Config struct {
	// Hosts are the Kestrel servers, host or host:port (22133 for memcache
	// and 2229 for thrift if left out). Batches go round robin to the
	// hosts that are up.
	Hosts []string `yaml:"hosts"`
	// Protocol is memcache (the default) or thrift.
	Protocol string `yaml:"protocol"`
	// Expiry is how long an item may wait in its queue before Kestrel
	// drops it; 0 (the default) keeps it until read. Memcache counts in
	// whole seconds: a fraction is rounded up.
	Expiry time.Duration `yaml:"expiry"`
	// Timeout bounds connecting and each exchange (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Protocol: "memcache", Timeout: 10 * time.Second}
}

func (c *Config) port() int {
	if c.Protocol == "thrift" {
		return DefaultThriftPort
	}
	return DefaultMemcachePort
}

// Validate checks c; problems are *logagent.FieldError values, joined.
func (c *Config) Validate() error {
	_, errs := hostpool.ParseHosts(c.Hosts, c.port())
	if c.Protocol != "memcache" && c.Protocol != "thrift" {
		errs = append(errs, logagent.FieldErrorf("protocol", "must be memcache or thrift, not %q", c.Protocol))
	}
	if c.Expiry < 0 || c.Expiry > maxExpiry {
		errs = append(errs, logagent.FieldErrorf("expiry", "must be from 0 (never) to 720h, not %s", c.Expiry))
	}
	if c.Timeout <= 0 {
		errs = append(errs, logagent.FieldErrorf("timeout", "must be positive, such as 10s"))
	}
	return errors.Join(errs...)
}

// Errors for answers that leave messages undelivered.
var (
	ErrNotStored   = errors.New("kestrel answered NOT_STORED (queue full)")
	ErrServerError = errors.New("kestrel answered SERVER_ERROR")
	ErrClientError = errors.New("kestrel answered CLIENT_ERROR")
	ErrBadQueue    = errors.New("category is not a valid Kestrel queue name")
)

// ValidQueue reports whether q can name a Kestrel queue: a memcache key
// (1 to 250 bytes, no spaces or control characters) without '/' (Kestrel's
// option separator) or '~' (its temporary journal files).
func ValidQueue(q string) bool {
	if q == "" || len(q) > 250 {
		return false
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c <= ' ' || c == 0x7f || c == '/' || c == '~' {
			return false
		}
	}
	return true
}

// Output sends batches to Kestrel.
type Output struct {
	id       string
	log      *slog.Logger
	protocol string
	// expiry in the protocol's unit: seconds for memcache, ms for thrift.
	expiry int64
	mc     *hostpool.Pool[*mcConn]
	th     *hostpool.Pool[*thriftrpc.Client]
}

// New returns an output for c, which must be valid. It does no I/O.
func New(id string, c Config, log *slog.Logger) (*Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addrs, _ := hostpool.ParseHosts(c.Hosts, c.port())
	o := &Output{id: id, log: log, protocol: c.Protocol}
	if c.Protocol == "thrift" {
		o.expiry = int64((c.Expiry + time.Millisecond - 1) / time.Millisecond)
		open := func(nc net.Conn) *thriftrpc.Client { return thriftrpc.New(nc, thriftrpc.Binary) }
		o.th = hostpool.New(addrs, c.Timeout, open, log)
	} else {
		o.expiry = int64((c.Expiry + time.Second - 1) / time.Second)
		o.mc = hostpool.New(addrs, c.Timeout, newMCConn, log)
	}
	return o, nil
}

// Send delivers batch, failing over to the next host if a connection
// breaks.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	if o.th != nil {
		return o.th.Send(ctx, len(batch), func(ctx context.Context, c *hostpool.Conn[*thriftrpc.Client], pending []int) hostpool.Result {
			return o.putThrift(ctx, c.State, batch, pending)
		})
	}
	return o.mc.Send(ctx, len(batch), func(ctx context.Context, c *hostpool.Conn[*mcConn], pending []int) hostpool.Result {
		return o.setMemcache(c.State, batch, pending)
	})
}

// badQueues moves the messages of pending whose category is not a valid
// queue name to permanent, logging them once per call.
func (o *Output) badQueues(batch []logagent.Message, pending []int) (good, bad []int) {
	good = pending
	for k, i := range pending {
		ok := batch[i].Source != nil && ValidQueue(batch[i].Source.Category)
		switch {
		case !ok && bad == nil:
			good = append([]int(nil), pending[:k]...)
			bad = append(bad, i)
		case !ok:
			bad = append(bad, i)
		case bad != nil:
			good = append(good, i)
		}
	}
	if bad != nil {
		q := ""
		if s := batch[bad[0]].Source; s != nil {
			q = s.Category
		}
		o.log.Error("dropping messages whose category is not a valid Kestrel queue name", "count", len(bad), "category", q)
	}
	return good, bad
}

// Close closes the connections.
func (o *Output) Close() error {
	if o.th != nil {
		return o.th.Close()
	}
	return o.mc.Close()
}

// Hosts returns the health of each host, for metrics.
func (o *Output) Hosts() []hostpool.HostStatus {
	if o.th != nil {
		return o.th.Hosts()
	}
	return o.mc.Hosts()
}

func (o *Output) addrs() []string {
	if o.th != nil {
		return o.th.Addrs()
	}
	return o.mc.Addrs()
}

// Describe returns the hosts and protocol, for --dry-run.
func (o *Output) Describe() string {
	proto := "memcache"
	if o.th != nil {
		proto = "thrift framed, binary"
	}
	return "hosts " + strings.Join(o.addrs(), ", ") + " (kestrel: " + proto + ")"
}

// Destination returns the queue m goes to.
func (o *Output) Destination(m *logagent.Message) string {
	if m.Source == nil || !ValidQueue(m.Source.Category) {
		q := ""
		if m.Source != nil {
			q = m.Source.Category
		}
		return fmt.Sprintf("nowhere: %q is not a valid queue name", q)
	}
	return "queue " + m.Source.Category
}

// Check resolves the host names, without connecting.
func (o *Output) Check(ctx context.Context) error { return hostpool.Check(ctx, o.addrs()) }

var (
	_ logagent.Output    = (*Output)(nil)
	_ logagent.Describer = (*Output)(nil)
	_ logagent.Checker   = (*Output)(nil)
)

// mcConn is the state kept on one memcache connection.
type mcConn struct {
	w *bufio.Writer
	r *bufio.Reader
}

func newMCConn(nc net.Conn) *mcConn {
	return &mcConn{w: bufio.NewWriterSize(nc, 64<<10), r: bufio.NewReaderSize(nc, 4<<10)}
}

// Memcache answers to set.
var (
	stored      = []byte("STORED")
	notStored   = []byte("NOT_STORED")
	clientError = []byte("CLIENT_ERROR")
	serverError = []byte("SERVER_ERROR")
)

// window bounds how many sets are written before their answers are read:
// the answers (8 bytes each) must fit the socket buffers, or the server
// would stop reading while we still write.
const window = 512

// writeSet writes one memcache set command for body.
func writeSet(w *bufio.Writer, queue string, expiry int64, body []byte) {
	w.WriteString("set ")
	w.WriteString(queue)
	w.WriteString(" 0 ")
	// Numbers are formatted in the writer's own free space: no allocation.
	w.Write(strconv.AppendInt(w.AvailableBuffer(), expiry, 10))
	w.WriteByte(' ')
	w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(len(body)), 10))
	w.WriteString("\r\n")
	w.Write(body)
	w.WriteString("\r\n")
}

// setMemcache sends the messages of pending as pipelined sets.
func (o *Output) setMemcache(c *mcConn, batch []logagent.Message, pending []int) hostpool.Result {
	good, bad := o.badQueues(batch, pending)
	var r hostpool.Result
	r.Permanent = bad
	if bad != nil {
		r.Err = ErrBadQueue
	}
	for start := 0; start < len(good); start += window {
		win := good[start:min(start+window, len(good))]
		for _, i := range win {
			writeSet(c.w, batch[i].Source.Category, o.expiry, batch[i].Body)
		}
		if err := c.w.Flush(); err != nil {
			// What was written may be stored or not: send it all again.
			r.Retry = append(r.Retry, good[start:]...)
			r.Err, r.Broken = fmt.Errorf("write: %w", err), true
			return r
		}
		for k, i := range win {
			line, err := c.r.ReadSlice('\n')
			if err != nil {
				r.Retry = append(r.Retry, good[start+k:]...)
				r.Err, r.Broken = fmt.Errorf("read answer: %w", err), true
				return r
			}
			ans := bytes.TrimRight(line, "\r\n")
			switch {
			case bytes.Equal(ans, stored):
			case bytes.Equal(ans, notStored):
				r.Retry = append(r.Retry, i)
				r.Err = ErrNotStored
			case bytes.HasPrefix(ans, clientError):
				r.Permanent = append(r.Permanent, i)
				r.Err = fmt.Errorf("%w: %s", ErrClientError, bytes.TrimSpace(ans[len(clientError):]))
				o.log.Error("kestrel refused a message", "answer", string(ans), "queue", batch[i].Source.Category, "bytes", len(batch[i].Body))
			case bytes.HasPrefix(ans, serverError):
				// The server closes the connection after it: the
				// answers after this one will never come.
				r.Retry = append(r.Retry, good[start+k:]...)
				r.Err = fmt.Errorf("%w: %s", ErrServerError, bytes.TrimSpace(ans[len(serverError):]))
				r.Broken = true
				return r
			default:
				// ERROR or anything else: we are out of step.
				r.Retry = append(r.Retry, good[start+k:]...)
				r.Err, r.Broken = fmt.Errorf("unexpected answer %q to set", ans), true
				return r
			}
		}
	}
	return r
}
