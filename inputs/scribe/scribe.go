// Package scribe is the Scribe relay input (type: scribe): a Thrift server
// (framed, binary) implementing Scribe's Log and fb303's monitoring calls.
// Each LogEntry becomes a message of the entry's category, its body the
// entry's message without one trailing newline. Log answers OK only once
// every routed output has acknowledged the call's messages, and TRY_LATER
// at once under backpressure (see package relay).
package scribe

import (
	"context"
	"errors"
	"time"
	"unsafe"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs"
	"github.com/logagent/logagent/inputs/relay"
	"github.com/logagent/logagent/internal/thriftgen/scribe"
)

// Config is the configuration of a scribe input. Port 1463 is Scribe's.
type Config struct {
	relay.Limits `yaml:",inline"`
	// Register, when set, keeps a node for this relay in ZooKeeper.
	Register *relay.Register `yaml:"register"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Limits: relay.DefaultLimits("0.0.0.0:1463")}
}

// Validate checks c; problems are *logagent.FieldError values, joined.
func (c *Config) Validate() error {
	errs := []error{c.Limits.Validate()}
	if c.Register != nil {
		errs = append(errs, logagent.JoinField("register", c.Register.Validate(c.Listen)))
	}
	return errors.Join(errs...)
}

// Input is a running Scribe relay.
type Input struct {
	srv *relay.Server
	env inputs.Env
}

// New listens on c.Listen; nothing is served until Run.
func New(c Config, env inputs.Env) (*Input, error) {
	srv, err := relay.Listen(c.Limits.Options(false, c.Register), env)
	if err != nil {
		return nil, err
	}
	in := &Input{srv: srv, env: env}
	p := scribe.NewScribeProcessor(in)
	relay.AddFB303(p, srv, "logagent scribe "+env.ID)
	srv.SetProcessor(p)
	return in, nil
}

// Addr is the address the input listens on.
func (in *Input) Addr() string { return in.srv.Addr().String() }

// Counters returns the relay's counters.
func (in *Input) Counters() *relay.Counters { return in.srv.Counters() }

// Run serves until ctx is done; see relay.Server.Run.
func (in *Input) Run(ctx context.Context) error { return in.srv.Run(ctx) }

// Close releases the listener of an input never run.
func (in *Input) Close() error { return in.srv.Close() }

// Log is Scribe's call: OK once every entry is delivered, TRY_LATER
// otherwise (nothing of the call is then known to be taken).
func (in *Input) Log(_ context.Context, entries []*scribe.LogEntry) (scribe.ResultCode, error) {
	msgs := make([]logagent.Message, 0, len(entries))
	// One Source per category of the call: they are few, and a Source
	// must not change once a message points at it.
	var sources map[string]*logagent.Source
	var last *logagent.Source
	now := time.Now().UnixNano()
	var size int64
	for _, e := range entries {
		if e == nil {
			continue
		}
		src := last
		if src == nil || src.Category != e.Category {
			if src = sources[e.Category]; src == nil {
				src = &logagent.Source{Input: in.env.ID, Category: e.Category, Host: in.env.Host}
				if sources == nil {
					sources = map[string]*logagent.Source{}
				}
				sources[e.Category] = src
			}
			last = src
		}
		body := e.Message
		if n := len(body); n > 0 && body[n-1] == '\n' {
			body = body[:n-1]
		}
		msgs = append(msgs, logagent.Message{Body: bytesOf(body), ReadNano: now, Source: src})
		size += int64(len(body))
	}
	if r, _ := in.srv.Deliver(msgs, size); r == relay.TryLater {
		return scribe.ResultCode_TRY_LATER, nil
	}
	return scribe.ResultCode_OK, nil
}

// bytesOf returns the bytes of s without a copy. Outputs only read message
// bodies (logagent.Message), so the string's immutability holds.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Describe tells, for --dry-run, what the input would serve.
func (c *Config) Describe() string {
	return "Scribe server (framed, binary) " + c.Limits.Describe(c.Register)
}
