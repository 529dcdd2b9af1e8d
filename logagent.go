// Package logagent holds the few types shared by inputs, the scheduler and
// outputs: a Message, the Output contract and the errors outputs return.
package logagent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// FileID identifies one file independently of its name: the device and inode
// it lives on, plus a fingerprint of its first bytes so that an inode reused
// by a new file is seen as a different file.
type FileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// Fingerprint is a hash of the first FingerprintLen bytes of the file.
	// FingerprintLen is below the configured fingerprint size only while the
	// file is shorter than that; the fingerprint is then extended as it grows.
	Fingerprint    uint64 `json:"fp"`
	FingerprintLen int    `json:"fp_len"`
}

func (id FileID) String() string {
	return fmt.Sprintf("%d:%d:%016x/%d", id.Dev, id.Ino, id.Fingerprint, id.FingerprintLen)
}

// Source describes the file a message was read from. One Source is shared by
// every message of a file read under one name; it is never modified once a
// message points at it (a renamed file gets a new Source).
type Source struct {
	Input    string            // input id
	Category string            // Scribe category, Kafka topic, Kestrel queue, Flume header
	Path     string            // the file's path when the message was read
	ID       FileID            // the file's identity
	Host     string            // the host name of the agent
	Fields   map[string]string // the input's static fields; read only
}

// Message is one unit delivered to outputs: one or more whole lines.
type Message struct {
	// Body is one or more whole lines joined by '\n', without the final
	// newline, or one piece of a line longer than the input's
	// max_message_bytes. It points into a buffer the input reuses once the
	// message is acknowledged: an output must not keep it, or modify it,
	// after Send returns.
	Body []byte
	// Offset is the file offset just past the last byte of the message
	// (its newline included): where reading resumes once it is delivered.
	Offset int64
	// ReadNano is when the message was read, in nanoseconds since the Unix
	// epoch (ReadTime): 8 bytes rather than a time.Time's 24, in a record
	// written and read once for every line.
	ReadNano int64
	Source   *Source
}

// ReadTime returns when m was read.
func (m *Message) ReadTime() time.Time { return time.Unix(0, m.ReadNano) }

// Output delivers batches of messages to one destination.
//
// The scheduler calls Send from a single goroutine per output, one batch at
// a time, and Close once after the last Send has returned. Send is called
// again with the same messages after it returned an error, so delivering a
// batch twice must be safe (delivery is at least once).
type Output interface {
	// Send delivers every message of batch, or returns an error:
	//   - nil: every message is delivered (acknowledged by the destination);
	//   - *PartialError: some messages are delivered, the others are
	//     listed to be retried or dropped as permanently undeliverable;
	//   - an error wrapping *PermanentError: no message of the batch can
	//     ever be delivered; they are counted, logged and acknowledged;
	//   - any other error: nothing is known to be delivered; the whole batch
	//     is retried after a backoff.
	// Send must return promptly once ctx is done.
	Send(ctx context.Context, batch []Message) error
	// Close releases connections and files.
	Close() error
}

// Describer is implemented by outputs that can tell, for --dry-run, where
// they send and where one message would go.
type Describer interface {
	// Describe returns the resolved destination of the output, such as
	// "hosts 10.0.0.1:1463, 10.0.0.2:1463 (framed, binary)".
	Describe() string
	// Destination returns where m would go, such as "topic nginx".
	Destination(m *Message) string
}

// Checker is implemented by outputs that can check, without sending
// anything, that their destination can be reached at all (for instance that
// host names resolve). Used by --dry-run.
type Checker interface {
	Check(ctx context.Context) error
}

// WarningError marks a problem a Checker found that does not keep the
// output from starting (ZooKeeper unreachable: its hosts are found once it
// is back); --dry-run prints it as a warning, not an error.
type WarningError struct{ Err error }

func (e *WarningError) Error() string { return e.Err.Error() }
func (e *WarningError) Unwrap() error { return e.Err }

// Warning wraps err as a WarningError; nil stays nil.
func Warning(err error) error {
	if err == nil {
		return nil
	}
	return &WarningError{Err: err}
}

// PermanentError marks an error that retrying cannot fix, such as a message
// larger than the destination accepts.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// PartialError reports a batch that was delivered in part. Indexes are into
// the batch given to Send. Messages listed in neither slice are delivered.
type PartialError struct {
	Retry     []int // not delivered: send again after a backoff
	Permanent []int // can never be delivered: counted, logged, dropped
	Err       error // why, for the log
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d messages to retry, %d undeliverable: %v", len(e.Retry), len(e.Permanent), e.Err)
}
func (e *PartialError) Unwrap() error { return e.Err }

// FieldError is a problem with one configuration key. Field is the key's
// path relative to the section being validated ("hosts[1]", "tls.ca"); the
// config loader prefixes it and adds the file and line.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// FieldErrorf returns a *FieldError for field.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// JoinField prefixes the field path of every FieldError in err with prefix,
// leaving other errors as they are.
func JoinField(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var list []error
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		list = u.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var fe *FieldError
		if errors.As(e, &fe) {
			f := fe.Field
			switch {
			case f == "":
				f = prefix
			case strings.HasPrefix(f, "["):
				f = prefix + f
			default:
				f = prefix + "." + f
			}
			out = append(out, &FieldError{Field: f, Msg: fe.Msg})
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// Chunk is a run of consecutive messages from one file, handed from an
// input to every output it is routed to as one unit, so that hand-offs and
// acknowledgements cost one operation per chunk rather than per message.
type Chunk struct {
	Messages []Message
	// OnDone is set by the input and called once, from the goroutine of the
	// last output to acknowledge, when every routed output has delivered
	// (or permanently dropped) every message of the chunk; or from the
	// publishing goroutine, before the publish returns, when the input's
	// filters dropped every message. After it is called the chunk and its
	// message bodies may be reused.
	OnDone func()
	// CaughtUp is set by the input when the read this chunk comes from
	// reached the end of its file: nothing more waits to be read there
	// now, and a batch need not wait long for more.
	CaughtUp bool
	pending  atomic.Int64
}

// Expect sets the number of outputs that must acknowledge every message of
// c. It is called once, before c is handed to any output.
func (c *Chunk) Expect(outputs int) { c.pending.Store(int64(len(c.Messages) * outputs)) }

// Ack records that one output has delivered n messages of c.
func (c *Chunk) Ack(n int) {
	if n > 0 && c.pending.Add(-int64(n)) == 0 && c.OnDone != nil {
		c.OnDone()
	}
}
