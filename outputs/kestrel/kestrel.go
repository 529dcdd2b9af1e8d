// Package kestrel ships messages to Kestrel queues, one item per message,
// queue = the message's category.
//
// With protocol memcache (the default, port 22133) each message is a
// memcache `set <queue> 0 <expiry> <bytes>`, pipelined in windows, and each
// answer decides that message alone. Kestrel (MemcacheHandler,
// PersistentQueue.add) answers:
//   - STORED: delivered;
//   - NOT_STORED: the queue is full, the item is larger than the queue's
//     maxItemSize, or the server is shutting down. The output cannot tell
//     which: a message larger than max_item_bytes is never sent (it can
//     never be delivered; counted and logged), the others are sent again
//     later;
//   - CLIENT_ERROR: the request could not be parsed; sending it again would
//     get the same answer, so the message is counted as undeliverable;
//   - SERVER_ERROR: the server refuses writes (read-only, quiescent, or this
//     client is not allowed) and disconnects; like a broken connection, the
//     unanswered messages are sent again, on another host if one is up.
//
// Kestrel reads an expiry of 1,000,000 seconds or more as an absolute Unix
// time: a longer expiry goes out as the Unix time it ends at.
//
// With protocol thrift (port 2229) the messages of each queue go in one
// Kestrel.put call over framed transport and binary protocol; put returns
// how many items, from the first, were put (it stops at the first refused,
// for the reasons NOT_STORED gives), and the rest are sent again. Its
// expiration_msec is a 32-bit count of milliseconds from now.
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
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/thriftrpc"
	"github.com/logagent/logagent/internal/zookeeper"
	"github.com/logagent/logagent/outputs/hostpool"
)

// Default ports, used for hosts given without one.
const (
	DefaultMemcachePort = 22133
	DefaultThriftPort   = 2229
)

// Expiry limits. Kestrel reads a memcache expiry below absoluteExpiry as
// seconds from now and one above as a Unix time, parsing it as a 32-bit
// integer; Thrift's expiration_msec is a 32-bit count of milliseconds.
const (
	absoluteExpiry    = 1000000
	maxThriftExpiry   = math.MaxInt32 * time.Millisecond // 596h31m23.647s
	maxMemcacheExpiry = math.MaxInt32                    // a Unix time in seconds: 2038-01-19
)

// Config is the configuration of a kestrel output.
type Config struct {
	// Hosts are the Kestrel servers, host or host:port (22133 for memcache
	// and 2229 for thrift if left out). Batches go round robin to the
	// hosts that are up.
	Hosts []string `yaml:"hosts"`
	// ZooKeeper, when set, finds (more) hosts in ZooKeeper.
	ZooKeeper *zookeeper.Config `yaml:"zookeeper"`
	// Protocol is memcache (the default) or thrift.
	Protocol string `yaml:"protocol"`
	// Expiry is how long an item may wait in its queue before Kestrel
	// drops it; 0 (the default) keeps it until read. Memcache counts in
	// whole seconds (a fraction is rounded up); Kestrel reads 1,000,000 s
	// (277h46m40s) or more as a Unix time, so such an expiry is sent as
	// the time it ends at, which must come before 2038-01-19. Thrift
	// counts milliseconds in 32 bits: at most 596h31m23.647s.
	Expiry time.Duration `yaml:"expiry"`
	// Timeout bounds connecting and each exchange (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxItemBytes is the largest item the Kestrel queues accept (their
	// maxItemSize); 0 (the default) for no limit, as Kestrel's default.
	// Kestrel answers a larger item NOT_STORED, as it does when a queue is
	// full, so the output never sends one: it counts it as undeliverable.
	// The agent refuses at load an input whose max_message_bytes is
	// larger.
	MaxItemBytes logagent.Size `yaml:"max_item_bytes"`
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

// MaxMessageBytes is max_item_bytes (0: no limit); the agent checks the
// inputs routed here against it.
func (c *Config) MaxMessageBytes() int { return int(c.MaxItemBytes) }

// Validate checks c; problems are *logagent.FieldError values, joined.
func (c *Config) Validate() error {
	errs := zookeeper.ValidateHosts(c.Hosts, c.port(), c.ZooKeeper)
	if c.Protocol != "memcache" && c.Protocol != "thrift" {
		errs = append(errs, logagent.FieldErrorf("protocol", "must be memcache or thrift, not %q", c.Protocol))
	}
	switch {
	case c.Expiry < 0:
		errs = append(errs, logagent.FieldErrorf("expiry", "must be 0 (never) or positive, not %s", c.Expiry))
	case c.Protocol == "thrift" && c.Expiry > maxThriftExpiry:
		errs = append(errs, logagent.FieldErrorf("expiry", "must be at most %s with protocol thrift: Kestrel's put takes expiration_msec as a 32-bit count of milliseconds; %s does not fit", maxThriftExpiry, c.Expiry))
	case c.Protocol == "memcache" && time.Now().Add(c.Expiry).Unix() > maxMemcacheExpiry:
		errs = append(errs, logagent.FieldErrorf("expiry", "%s ends after 2038-01-19: Kestrel reads a memcache expiry as a 32-bit Unix time", c.Expiry))
	}
	if c.MaxItemBytes < 0 || int64(c.MaxItemBytes) > math.MaxInt32 {
		errs = append(errs, logagent.FieldErrorf("max_item_bytes", "must be from 0 (no limit) to 2GiB, not %d", int64(c.MaxItemBytes)))
	}
	if c.Timeout <= 0 {
		errs = append(errs, logagent.FieldErrorf("timeout", "must be positive, such as 10s"))
	}
	return errors.Join(errs...)
}

// Errors for answers that leave messages undelivered.
var (
	ErrNotStored   = errors.New("kestrel answered NOT_STORED (queue full, item too large, or shutting down)")
	ErrServerError = errors.New("kestrel answered SERVER_ERROR")
	ErrClientError = errors.New("kestrel answered CLIENT_ERROR")
	ErrBadQueue    = errors.New("category is not a valid Kestrel queue name")
	ErrTooLarge    = errors.New("message larger than max_item_bytes")
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
	hostpool.Hosted // Hosts, Probe, Describe, Check, Close
	id              string
	log             *slog.Logger
	// expiry in the protocol's unit: seconds for memcache, ms for thrift.
	expiry int64
	// maxItem is max_item_bytes (0: no limit).
	maxItem int
	mc      *hostpool.Pool[*mcConn]
	th      *hostpool.Pool[*thriftrpc.Client]
	zk      *zookeeper.Discovery // nil without zookeeper:
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
	o := &Output{id: id, log: log, maxItem: int(c.MaxItemBytes)}
	if c.ZooKeeper != nil {
		// Kestrel registers its servers under <prefix>/read and
		// <prefix>/write; a writer uses write.
		o.zk = zookeeper.NewDiscovery(c.ZooKeeper, strings.TrimSuffix(c.ZooKeeper.Path, "/")+"/write", log)
	}
	if c.Protocol == "thrift" {
		o.expiry = int64((c.Expiry + time.Millisecond - 1) / time.Millisecond)
		open := func(nc net.Conn) *thriftrpc.Client { return thriftrpc.New(nc, thriftrpc.Binary) }
		o.th = hostpool.New(addrs, c.Timeout, open, log)
		o.Hosted = hostpool.NewHosted(o.th, o.zk, "kestrel: thrift framed, binary")
	} else {
		o.expiry = int64((c.Expiry + time.Second - 1) / time.Second)
		o.mc = hostpool.New(addrs, c.Timeout, newMCConn, log)
		o.Hosted = hostpool.NewHosted(o.mc, o.zk, "kestrel: memcache")
	}
	return o, nil
}

// Send delivers batch, failing over to the next host if a connection
// breaks.
func (o *Output) Send(ctx context.Context, batch []logagent.Message) error {
	o.StartDiscovery()
	if o.th != nil {
		return o.th.Send(ctx, len(batch), func(ctx context.Context, c *hostpool.Conn[*thriftrpc.Client], pending []int) hostpool.Result {
			return o.putThrift(ctx, c.State, batch, pending)
		})
	}
	expiry := memcacheExpiry(time.Now(), o.expiry)
	return o.mc.Send(ctx, len(batch), func(ctx context.Context, c *hostpool.Conn[*mcConn], pending []int) hostpool.Result {
		return o.setMemcache(c.State, batch, pending, expiry)
	})
}

// memcacheExpiry is the expiry field of a set sent at now for an expiry of
// secs seconds: Kestrel reads 1,000,000 or more as a Unix time, so a long
// expiry goes out as the time it ends at.
func memcacheExpiry(now time.Time, secs int64) int64 {
	if secs < absoluteExpiry {
		return secs
	}
	return now.Unix() + secs
}

// badItems moves the messages of pending that Kestrel can never take to
// bad: those whose category is not a valid queue name, and those larger
// than max_item_bytes. It logs them once per call and returns why.
func (o *Output) badItems(batch []logagent.Message, pending []int) (good, bad []int, why error) {
	good = pending
	var badQueue, tooLarge int
	for k, i := range pending {
		ok := true
		switch {
		case batch[i].Source == nil || !ValidQueue(batch[i].Source.Category):
			ok = false
			badQueue++
		case o.maxItem > 0 && len(batch[i].Body) > o.maxItem:
			ok = false
			tooLarge++
		}
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
	if badQueue > 0 {
		q := ""
		for _, i := range bad {
			if s := batch[i].Source; s == nil || !ValidQueue(s.Category) {
				if s != nil {
					q = s.Category
				}
				break
			}
		}
		o.log.Error("dropping messages whose category is not a valid Kestrel queue name", "count", badQueue, "category", q)
		why = ErrBadQueue
	}
	if tooLarge > 0 {
		o.log.Error("dropping messages larger than max_item_bytes", "count", tooLarge, "max_item_bytes", o.maxItem)
		why = ErrTooLarge
	}
	return good, bad, why
}

// Discovery returns the output's ZooKeeper discovery, nil without one.
func (o *Output) Discovery() *zookeeper.Discovery { return o.zk }

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
// expiry is the set's expiry field, computed once per Send.
func (o *Output) setMemcache(c *mcConn, batch []logagent.Message, pending []int, expiry int64) hostpool.Result {
	good, bad, why := o.badItems(batch, pending)
	var r hostpool.Result
	r.Permanent, r.Err = bad, why
	for start := 0; start < len(good); start += window {
		win := good[start:min(start+window, len(good))]
		for _, i := range win {
			writeSet(c.w, batch[i].Source.Category, expiry, batch[i].Body)
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
				r.Err = answerErr(ErrClientError, ans[len(clientError):])
				o.log.Error("kestrel refused a message", "answer", string(ans), "queue", batch[i].Source.Category, "bytes", len(batch[i].Body))
			case bytes.HasPrefix(ans, serverError):
				// The server closes the connection after it: the
				// answers after this one will never come.
				r.Retry = append(r.Retry, good[start+k:]...)
				r.Err = answerErr(ErrServerError, ans[len(serverError):])
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

// answerErr is base, with the text that followed the answer's word if any
// (Kestrel sends the word alone).
func answerErr(base error, rest []byte) error {
	if rest = bytes.TrimSpace(rest); len(rest) == 0 {
		return base
	}
	return fmt.Errorf("%w: %s", base, rest)
}
