package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/hostpool"
)

// Writer tuning. The agent's scheduler batches and retries, so the library
// is asked to send at once and to retry only briefly on its own.
const (
	// batchTimeout is how long kafka-go waits for a partition's last,
	// partial batch to fill before sending it. Send makes one
	// WriteMessages call at a time and waits for it, so nothing more can
	// come to fill the batch: waiting only adds its length to every call.
	// kafka-go adds a call's messages of one partition to its batch under
	// the partition's lock, which the timeout's goroutine takes before
	// sending the batch, so a batch still holds every message of the call
	// (up to BatchBytes).
	// Zero would mean kafka-go's default, 1s.
	batchTimeout = time.Nanosecond
	// maxAttempts bounds the library's own retries of a partition batch on
	// errors Kafka calls retriable (leader moved, request timed out); the
	// scheduler retries what is still failed after that.
	maxAttempts = 3
	// headerAllowance is room above max_message_bytes for a record's key,
	// headers and framing: the library's per-partition request size cap is
	// max_message_bytes + headerAllowance, which with the defaults stays
	// under Kafka's default max.message.bytes (1048588).
	headerAllowance = 16 << 10
	// metadataTTL bounds how long kafka-go keeps cluster metadata. It does
	// not refresh on NOT_LEADER answers nor after a topic came back with
	// an error (its default is 6s), so this bounds how long a moved leader
	// or a transient metadata error holds the output back.
	metadataTTL = 2 * time.Second
)

// Output produces messages to Kafka. Send is called from one goroutine.
type Output struct {
	id     string
	cfg    Config
	log    *slog.Logger
	topic  string // cfg.Topic, or "" for the category
	acks   kafkago.RequiredAcks
	comp   kafkago.Compression
	bal    kafkago.Balancer
	w      *kafkago.Writer // nil until the first Send
	tr     *transport
	b      builder
	closed bool
}

var (
	_ logagent.Output    = (*Output)(nil)
	_ logagent.Describer = (*Output)(nil)
	_ logagent.Checker   = (*Output)(nil)
)

// New returns the output described by c, which must be valid. It does no
// I/O: files named by tls and sasl are read, and brokers dialed, on the
// first Send.
func New(id string, c Config, log *slog.Logger) (*Output, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &Output{id: id, cfg: c, log: log, topic: c.Topic}
	switch c.Acks {
	case "all":
		o.acks = kafkago.RequireAll
	case "one":
		o.acks = kafkago.RequireOne
	case "none":
		o.acks = kafkago.RequireNone
	}
	switch c.Compression {
	case "gzip":
		o.comp = kafkago.Gzip
	case "snappy":
		o.comp = kafkago.Snappy
	case "lz4":
		o.comp = kafkago.Lz4
	case "zstd":
		o.comp = kafkago.Zstd
	}
	switch c.Key {
	case "host", "path":
		// Same partitioning as Sarama's hash partitioner (FNV-1a).
		o.bal = &kafkago.Hash{}
	default:
		o.bal = &kafkago.RoundRobin{}
	}
	o.b = builder{topic: c.Topic, key: c.Key, maxBytes: int(c.MaxBytes), now: time.Now}
	return o, nil
}

// connect builds the writer on first use. The library dials lazily and
// keeps connections to each broker it needs.
func (o *Output) connect() error {
	if o.w != nil {
		return nil
	}
	tr := &kafkago.Transport{
		DialTimeout: o.cfg.Timeout,
		MetadataTTL: metadataTTL,
		ClientID:    "logagent",
	}
	if o.cfg.TLS != nil {
		tc, err := o.cfg.TLS.tlsConfig()
		if err != nil {
			return err
		}
		tr.TLS = tc
	}
	if o.cfg.SASL != nil {
		m, err := o.cfg.SASL.mechanism()
		if err != nil {
			return err
		}
		tr.SASL = m
	}
	o.tr = newTransport(tr)
	o.w = &kafkago.Writer{
		Addr:                   brokerAddr(o.cfg.Brokers),
		Balancer:               o.bal,
		MaxAttempts:            maxAttempts,
		BatchBytes:             int64(o.cfg.MaxBytes) + headerAllowance,
		BatchTimeout:           batchTimeout,
		ReadTimeout:            o.cfg.Timeout,
		WriteTimeout:           o.cfg.Timeout,
		RequiredAcks:           o.acks,
		Compression:            o.comp,
		Transport:              o.tr,
		AllowAutoTopicCreation: o.cfg.AutoCreateTopic,
		ErrorLogger:            kafkago.LoggerFunc(o.libError),
	}
	return nil
}

// libError logs the library's own retries at debug level: what is still
// failing once it gives up reaches the scheduler as an error.
func (o *Output) libError(format string, args ...any) {
	if o.log.Enabled(context.Background(), slog.LevelDebug) {
		o.log.Debug("kafka-go: " + fmt.Sprintf(format, args...))
	}
}

// addr is the bootstrap address list in the form kafka-go's Transport reads
// ("tcp,tcp" and "h1:p,h2:p"), joined once: kafka.TCP's address joins
// the strings on every call, and the Writer asks for them once per message.
type addr struct{ network, address string }

func (a addr) Network() string { return a.network }
func (a addr) String() string  { return a.address }

func brokerAddr(brokers []string) net.Addr {
	network := strings.TrimSuffix(strings.Repeat("tcp,", len(brokers)), ",")
	return addr{network: network, address: strings.Join(brokers, ",")}
}

func (s *SASLConfig) mechanism() (sasl.Mechanism, error) {
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	switch s.Mechanism {
	case "plain":
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	case "scram-sha-256":
		m, err := scram.Mechanism(scram.SHA256, s.Username, pw)
		if err != nil {
			return nil, fmt.Errorf("sasl: %s for user %q: %v", s.Mechanism, s.Username, errNoSecret(err))
		}
		return m, nil
	case "scram-sha-512":
		m, err := scram.Mechanism(scram.SHA512, s.Username, pw)
		if err != nil {
			return nil, fmt.Errorf("sasl: %s for user %q: %v", s.Mechanism, s.Username, errNoSecret(err))
		}
		return m, nil
	}
	return nil, fmt.Errorf("sasl.mechanism: unknown %q", s.Mechanism)
}

// errNoSecret keeps only the kind of a SASL preparation error: stringprep
// errors may quote the offending input.
func errNoSecret(error) string { return "username or password is not valid for SCRAM (stringprep)" }

// Send produces batch, one record per message, and waits for the brokers'
// answers. See the package documentation for how answers map to errors.
func (o *Output) Send(ctx context.Context, batch []Message) error {
	if o.closed {
		return errors.New("kafka output is closed")
	}
	if len(batch) == 0 {
		return nil
	}
	if err := o.connect(); err != nil {
		return err
	}
	b := &o.b
	b.build(batch)
	res := result{}
	for _, p := range b.perm {
		res.permanent(p.index, p.err)
	}
	err := o.write(ctx, b.msgs, b.idx, true, &res)
	if ctx.Err() != nil {
		// The library may still send the batches it queued after
		// WriteMessages returned: leave the buffers they point to to it
		// and start new ones.
		b.abandon()
	}
	if err != nil {
		if len(b.perm) == 0 {
			return err
		}
		// Everything sent is to be retried, but the messages refused before
		// sending are known to be undeliverable.
		res.retryIdx = res.retryIdx[:0]
		res.perm = res.perm[:len(b.perm)]
		for _, i := range b.idx {
			res.retry(i, err)
		}
	}
	return res.err()
}

type Message = logagent.Message

// result collects what a Send could not deliver.
type result struct {
	retryIdx, perm []int
	errs           []error
}

func (r *result) retry(i int, err error) {
	r.retryIdx = append(r.retryIdx, i)
	r.note(err)
}

func (r *result) permanent(i int, err error) {
	r.perm = append(r.perm, i)
	r.note(err)
}

// note keeps one of each distinct error text, for the log line.
func (r *result) note(err error) {
	if len(r.errs) >= 8 {
		return
	}
	for _, e := range r.errs {
		if e.Error() == err.Error() {
			return
		}
	}
	r.errs = append(r.errs, err)
}

func (r *result) err() error {
	if len(r.retryIdx) == 0 && len(r.perm) == 0 {
		return nil
	}
	slices.Sort(r.retryIdx)
	slices.Sort(r.perm)
	return &logagent.PartialError{Retry: r.retryIdx, Permanent: r.perm, Err: errors.Join(r.errs...)}
}

// write sends msgs (msgs[k] is message idx[k] of the agent's batch) in one
// WriteMessages call and records in res the messages not delivered. It
// returns an error only when nothing of msgs is known to be delivered and
// the whole of it is to be retried.
func (o *Output) write(ctx context.Context, msgs []kafkago.Message, idx []int, split bool, res *result) error {
	if len(msgs) == 0 {
		return nil
	}
	// BatchSize is read only within WriteMessages, on this goroutine.
	o.w.BatchSize = o.batchSize(msgs)
	o.tr.reset()
	err := o.w.WriteMessages(ctx, msgs...)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	var werrs kafkago.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != len(msgs) {
		// Nothing was sent: the library failed before producing (metadata,
		// dial, authentication). When the batch spans several topics, one
		// missing or forbidden topic must not hold back the others.
		if split && manyTopics(msgs) {
			return o.writeByTopic(ctx, msgs, idx, res)
		}
		return o.wholeError(msgs, err)
	}
	var tooLarge []int // positions in msgs
	for k, e := range werrs {
		switch {
		case e == nil:
		case errors.Is(e, kafkago.MessageSizeTooLarge), errors.Is(e, kafkago.RecordListTooLarge):
			tooLarge = append(tooLarge, k)
		case isPermanent(e):
			res.permanent(idx[k], fmt.Errorf("topic %s: %w", msgs[k].Topic, e))
		default:
			res.retry(idx[k], fmt.Errorf("topic %s: %w", msgs[k].Topic, e))
		}
	}
	return o.isolate(ctx, msgs, idx, tooLarge, res)
}

// batchSize returns the Writer's BatchSize for a call of msgs. kafka-go
// sends a call's messages of one partition in one batch while they fit its
// BatchSize (and BatchBytes), so it must not split a call by count; but it
// allocates BatchSize messages for every partition batch, so it is sized
// to the call, not set once to a large bound. With round robin over one
// topic of P partitions, a call of n messages gives each partition
// ceil(n/P) of them at most (kafka-go's RoundRobin deals them out in turn);
// otherwise, with keys or several topics, a partition may get them all. P
// is the count in the last metadata answer: were it out of date, a batch
// would only go in two requests.
func (o *Output) batchSize(msgs []kafkago.Message) int {
	n := len(msgs)
	if _, ok := o.bal.(*kafkago.RoundRobin); !ok || manyTopics(msgs) {
		return n
	}
	p := o.tr.partitions(msgs[0].Topic)
	if p <= 1 {
		return n
	}
	return (n + p - 1) / p
}

// isolate resolves MESSAGE_TOO_LARGE answers. The broker refuses a whole
// partition batch when it exceeds its max.message.bytes, so every message of
// the batch gets the error, most of them innocent. A message that was alone
// with the error is too large by itself; otherwise each is sent alone to
// find which. This happens only when a broker or topic accepts less than
// this output's max_message_bytes, which the log says.
func (o *Output) isolate(ctx context.Context, msgs []kafkago.Message, idx []int, tooLarge []int, res *result) error {
	if len(tooLarge) == 0 {
		return nil
	}
	if len(tooLarge) == 1 {
		k := tooLarge[0]
		res.permanent(idx[k], fmt.Errorf("topic %s: %w (%d bytes)", msgs[k].Topic, kafkago.MessageSizeTooLarge, len(msgs[k].Value)))
		return nil
	}
	o.log.Warn("broker refused a batch as too large; sending its messages one by one: the topic's max.message.bytes is lower than this output's max_message_bytes",
		"messages", len(tooLarge), "max_message_bytes", int64(o.cfg.MaxBytes))
	o.w.BatchSize = 1
	for n, k := range tooLarge {
		o.tr.reset()
		err := o.w.WriteMessages(ctx, msgs[k])
		var werrs kafkago.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == 1 {
			err = werrs[0]
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			for _, k := range tooLarge[n:] {
				res.retry(idx[k], err)
			}
			return nil
		case errors.Is(err, kafkago.MessageSizeTooLarge), errors.Is(err, kafkago.RecordListTooLarge):
			res.permanent(idx[k], fmt.Errorf("topic %s: %w (%d bytes)", msgs[k].Topic, kafkago.MessageSizeTooLarge, len(msgs[k].Value)))
		default:
			res.retry(idx[k], fmt.Errorf("topic %s: %w", msgs[k].Topic, err))
		}
	}
	return nil
}

// writeByTopic sends msgs one topic at a time after a whole-call failure,
// so that each topic's messages are delivered or retried on their own.
func (o *Output) writeByTopic(ctx context.Context, msgs []kafkago.Message, idx []int, res *result) error {
	var topics []string
	for i := range msgs {
		if !slices.Contains(topics, msgs[i].Topic) {
			topics = append(topics, msgs[i].Topic)
		}
	}
	var sub []kafkago.Message
	var subIdx []int
	for _, t := range topics {
		sub, subIdx = sub[:0], subIdx[:0]
		for k := range msgs {
			if msgs[k].Topic == t {
				sub = append(sub, msgs[k])
				subIdx = append(subIdx, idx[k])
			}
		}
		if err := o.write(ctx, sub, subIdx, false, res); err != nil {
			if ctx.Err() != nil {
				return err
			}
			for _, i := range subIdx {
				res.retry(i, err)
			}
		}
	}
	return nil
}

// wholeError explains a failure of a whole call.
func (o *Output) wholeError(msgs []kafkago.Message, err error) error {
	if errors.Is(err, kafkago.UnknownTopicOrPartition) {
		// kafka-go also says this when the topic's metadata came with an
		// error (no leader yet), until its next metadata refresh.
		if o.cfg.AutoCreateTopic {
			return fmt.Errorf("topic %s is not in the cluster's metadata (auto_create_topic is on, but the broker did not create it); retrying: %w", msgs[0].Topic, err)
		}
		return fmt.Errorf("topic %s is not in the cluster's metadata: it does not exist (auto_create_topic is off: create it) or has no leader yet; retrying: %w", msgs[0].Topic, err)
	}
	if o.cfg.SASL != nil && errors.Is(err, io.ErrUnexpectedEOF) {
		// Brokers close the connection on a failed authentication.
		return fmt.Errorf("produce to %s: %w (the broker closed the connection: are the sasl credentials right?)", o.brokers(), err)
	}
	return fmt.Errorf("produce to %s: %w", o.brokers(), err)
}

func manyTopics(msgs []kafkago.Message) bool {
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Topic != msgs[0].Topic {
			return true
		}
	}
	return false
}

// isPermanent reports a per-record answer that no retry can change. Other
// errors Kafka calls non-retriable (authorization, unsupported version) are
// retried anyway: they come from the cluster's configuration, which someone
// can fix, and dropping logs meanwhile would lose them.
func isPermanent(err error) bool {
	return errors.Is(err, kafkago.InvalidTopic) || errors.Is(err, kafkago.InvalidRecord)
}

func (o *Output) brokers() string { return strings.Join(o.cfg.Brokers, ", ") }

// Close closes the writer and its connections.
func (o *Output) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	if o.w == nil {
		return nil
	}
	err := o.w.Close()
	o.tr.CloseIdleConnections()
	return err
}

// Describe tells where the output sends, never the password.
func (o *Output) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers %s (acks %s, compression %s, key %s", o.brokers(), o.cfg.Acks, o.cfg.Compression, o.cfg.Key)
	if o.cfg.TLS != nil {
		b.WriteString(", tls")
	}
	if s := o.cfg.SASL; s != nil {
		fmt.Fprintf(&b, ", sasl %s as %s", s.Mechanism, s.Username)
	}
	b.WriteString(")")
	return b.String()
}

// Destination returns the topic m would be produced to.
func (o *Output) Destination(m *Message) string {
	t := o.topic
	if t == "" && m.Source != nil {
		t = m.Source.Category
	}
	if err := checkTopic(t); err != nil {
		return fmt.Sprintf("topic %q (undeliverable: %v)", t, err)
	}
	return "topic " + t
}

// Check resolves every broker's host name and reads the TLS and SASL files,
// without connecting.
func (o *Output) Check(ctx context.Context) error {
	var errs []error
	if err := hostpool.Check(ctx, o.cfg.Brokers); err != nil {
		errs = append(errs, err)
	}
	if o.cfg.TLS != nil {
		if _, err := o.cfg.TLS.tlsConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.cfg.SASL != nil {
		if _, err := o.cfg.SASL.mechanism(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
