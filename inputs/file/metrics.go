package file

import "sync/atomic"

// Metrics counts what the input did. Safe for concurrent use.
type Metrics struct {
	Lines        atomic.Int64 // messages handed out
	Bytes        atomic.Int64 // bytes they cover
	truncations  atomic.Int64
	ClosedUnread atomic.Int64 // removed files closed before they were read to the end
	// ownFlushes counts harvesters that flushed the checkpoint
	// themselves before their first lines (emit), for tests.
	ownFlushes atomic.Int64
}

func (m *Metrics) addRead(msgs, bytes int) {
	m.Lines.Add(int64(msgs))
	m.Bytes.Add(int64(bytes))
}

// Truncations returns how many times a file was seen truncated.
func (m *Metrics) Truncations() int64 { return m.truncations.Load() }
