// Package outputs groups the output packages, one per destination type.
//
// Every output package (outputs/file, outputs/stdout, outputs/scribe,
// outputs/flume, outputs/kestrel, outputs/kafka) has the same shape, so that
// the agent wires them from one table (agent/outputs.go):
//
//	type Config struct { ... }            // the type's own keys, with yaml tags
//	func DefaultConfig() Config           // every default filled in
//	func (c *Config) Validate() error     // *logagent.FieldError values, joined
//	func New(id string, c Config, log *slog.Logger) (*Output, error)
//
// The logger given to New already carries the output's id (key "output"):
// an output must not add it again, or JSON logs get the key twice.
//
// New does no I/O: --dry-run builds every output to describe it. Connections
// are made on the first Send and reused. *Output implements
// logagent.Output and logagent.Describer, and logagent.Checker when it can
// check its destination without sending (host names resolve).
//
// Config holds only the type's own keys. The agent owns the keys common to
// every output (id, type, batch, max_backoff) and the retry loop: an output
// never sleeps to retry a whole batch itself, it returns an error and the
// scheduler backs off. It may try another host before returning.
//
// A Config whose destination limits the message size implements
//
//	MaxMessageBytes() int
//
// and the agent refuses, at load, an input whose max_message_bytes is larger
// than an output it routes to accepts (agent's checkMessageFits, the one
// place that compares the two; an output adds no check of its own there).
//
// An output that sends to hosts (through outputs/hostpool) embeds a
// hostpool.Hosted, which gives it Describe, Check, Hosts (for metrics and
// /status), Close, and
//
//	Probe(ctx context.Context) error
//
// which the scheduler calls, once a second, while it backs off after a send
// that delivered nothing: nil when a host that had failed accepts a
// connection again, and the scheduler then sends at once instead of waiting
// out its backoff.
//
// outputs/outputtest.Conformance is what every such output passes against
// its real peer (delivery, faults and peer restarts, failover, a cancelled
// send); each output's tests run it, and test on their own only what is
// their protocol's.
package outputs
