package kafka

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/logagent/logagent"
)

// Record header names: the same as the Flume output's event headers.
const (
	hdrTimestamp = "timestamp" // milliseconds since the epoch, when read
	hdrHost      = "host"
	hdrPath      = "path"
	hdrOffset    = "offset" // file offset just past the message
	hdrCategory  = "category"
	hdrInput     = "input"
)

// maxSources bounds the per-source cache; a long-running agent sees a new
// Source for every rotated file.
const maxSources = 1024

// builder turns a batch into kafka-go messages, reusing its slices from one
// batch to the next so that a batch costs no allocation per message.
//
// Bodies are copied into buf rather than referenced: kafka-go may still send
// a batch after WriteMessages returned early on a cancelled context, and the
// input reuses a message's buffer once it is acknowledged. After such a
// return the builder abandons buf and hdrs to the library (abandon) and
// starts new ones.
type builder struct {
	topic    string // configured topic, or "" for the category
	key      string // none, host, path
	maxBytes int
	now      func() time.Time

	msgs []kafkago.Message
	idx  []int // msgs[k] is batch[idx[k]]
	perm []refused
	buf  []byte           // bodies and header values of the batch
	hdrs []kafkago.Header // headers of every message, back to back
	srcs map[*logagent.Source]*source
}

// refused is a message refused before sending.
type refused struct {
	index int
	err   error
}

// source holds what is computed once per Source: the topic, the key and
// the headers that do not change from one message to the next. Its byte
// slices are never modified, so the library may keep them.
type source struct {
	topic    string
	topicErr error
	host     []byte
	path     []byte
	static   []kafkago.Header // host, path, category, input, fields
}

// perMessage is the number of bytes buf needs beyond a message's body: two
// decimal int64 header values.
const perMessage = 2 * 20

func (b *builder) build(batch []logagent.Message) {
	b.msgs, b.idx, b.perm, b.hdrs = b.msgs[:0], b.idx[:0], b.perm[:0], b.hdrs[:0]
	need := 0
	for i := range batch {
		need += len(batch[i].Body) + perMessage
	}
	// buf must not grow during the loop: messages point into it.
	if cap(b.buf) < need {
		b.buf = make([]byte, 0, need+need/4)
	}
	buf := b.buf[:0]
	if b.srcs == nil || len(b.srcs) > maxSources {
		b.srcs = make(map[*logagent.Source]*source)
	}
	for i := range batch {
		m := &batch[i]
		src := b.source(m.Source)
		if src.topicErr != nil {
			b.perm = append(b.perm, refused{i, src.topicErr})
			continue
		}
		if len(m.Body) > b.maxBytes {
			b.perm = append(b.perm, refused{i, fmt.Errorf("topic %s: message of %d bytes is larger than max_message_bytes %d", src.topic, len(m.Body), b.maxBytes)})
			continue
		}
		var t time.Time
		if m.ReadNano != 0 {
			t = m.ReadTime()
		} else {
			t = b.now()
		}
		start := len(buf)
		buf = append(buf, m.Body...)
		value := buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = strconv.AppendInt(buf, t.UnixMilli(), 10)
		ts := buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = strconv.AppendInt(buf, m.Offset, 10)
		off := buf[start:len(buf):len(buf)]

		h := len(b.hdrs)
		b.hdrs = append(b.hdrs, kafkago.Header{Key: hdrTimestamp, Value: ts}, kafkago.Header{Key: hdrOffset, Value: off})
		b.hdrs = append(b.hdrs, src.static...)
		km := kafkago.Message{
			Topic:   src.topic,
			Value:   value,
			Headers: b.hdrs[h:len(b.hdrs):len(b.hdrs)],
			Time:    t,
		}
		switch b.key {
		case "host":
			km.Key = src.host
		case "path":
			km.Key = src.path
		}
		if n := recordSize(&km); n > b.maxBytes+headerAllowance {
			b.perm = append(b.perm, refused{i, fmt.Errorf("topic %s: record of %d bytes (body %d and headers) is larger than max_message_bytes %d plus %d for headers", src.topic, n, len(m.Body), b.maxBytes, headerAllowance)})
			continue
		}
		b.msgs = append(b.msgs, km)
		b.idx = append(b.idx, i)
	}
	b.buf = buf
}

// abandon leaves the current buffers to whoever still points into them.
func (b *builder) abandon() {
	b.buf, b.hdrs = nil, nil
}

func (b *builder) source(s *logagent.Source) *source {
	if src, ok := b.srcs[s]; ok {
		return src
	}
	src := newSource(s, b.topic)
	b.srcs[s] = src
	return src
}

func newSource(s *logagent.Source, topic string) *source {
	if s == nil {
		s = &logagent.Source{}
	}
	src := &source{topic: topic, host: []byte(s.Host), path: []byte(s.Path)}
	if src.topic == "" {
		src.topic = s.Category
		if err := checkTopic(s.Category); err != nil {
			src.topicErr = fmt.Errorf("category %q cannot be a Kafka topic: %w", s.Category, err)
		}
	}
	src.static = make([]kafkago.Header, 0, 4+len(s.Fields))
	src.static = append(src.static,
		kafkago.Header{Key: hdrHost, Value: src.host},
		kafkago.Header{Key: hdrPath, Value: src.path},
		kafkago.Header{Key: hdrCategory, Value: []byte(s.Category)},
		kafkago.Header{Key: hdrInput, Value: []byte(s.Input)},
	)
	// Sorted, so that records of one file always carry headers in the same
	// order. A field named like a standard header does not replace it.
	for _, k := range slices.Sorted(maps.Keys(s.Fields)) {
		if reserved(k) {
			continue
		}
		src.static = append(src.static, kafkago.Header{Key: k, Value: []byte(s.Fields[k])})
	}
	return src
}

// recordSize is an upper bound of the size kafka-go counts for m against
// Writer.BatchBytes, so that a message passing this check is never refused
// by the library for the whole call.
func recordSize(m *kafkago.Message) int {
	n := 4 + 1 + 1 + 8 + 4 + len(m.Key) + 4 + len(m.Value) + 5
	for i := range m.Headers {
		n += 5 + len(m.Headers[i].Key) + 5 + len(m.Headers[i].Value)
	}
	return n
}

func reserved(k string) bool {
	switch k {
	case hdrTimestamp, hdrHost, hdrPath, hdrOffset, hdrCategory, hdrInput:
		return true
	}
	return false
}
