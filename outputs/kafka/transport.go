package kafka

import (
	"context"
	"net"
	"sync"

	kafkago "github.com/segmentio/kafka-go"
	meta "github.com/segmentio/kafka-go/protocol/metadata"
)

// transport is kafka-go's Transport with one addition: within one
// WriteMessages call it answers the Writer's metadata lookups for a topic
// from the first answer for that topic. The Writer asks for the topic's
// partition count once per message, and kafka-go's Transport answers each
// from its cached cluster metadata by building a new filtered copy: two
// allocations and a search a message, work per message rather than per
// byte, which outweighs the rest of a send for short lines. The answers of
// one call are the same but for a metadata refresh landing in the middle
// of it, which kafka-go cannot promise to see either. Only answers without error are kept, so a
// missing topic or one being created is asked for every time, as before.
// reset is called before each WriteMessages call.
//
// It also remembers the last partition count seen for each topic, for
// Output.batchSize.
type transport struct {
	*kafkago.Transport

	mu     sync.Mutex
	topics map[string]*meta.Response
	parts  map[string]int
}

func newTransport(tr *kafkago.Transport) *transport {
	return &transport{Transport: tr, topics: map[string]*meta.Response{}, parts: map[string]int{}}
}

// partitions returns the number of partitions of topic in the last answer
// about it, 0 if none came yet.
func (t *transport) partitions(topic string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parts[topic]
}

// reset forgets the answers kept.
func (t *transport) reset() {
	t.mu.Lock()
	clear(t.topics)
	t.mu.Unlock()
}

// RoundTrip sends req, or answers a one-topic metadata request from the
// answer kept.
func (t *transport) RoundTrip(ctx context.Context, addr net.Addr, req kafkago.Request) (kafkago.Response, error) {
	m, ok := req.(*meta.Request)
	if !ok || len(m.TopicNames) != 1 {
		return t.Transport.RoundTrip(ctx, addr, req)
	}
	topic := m.TopicNames[0]
	t.mu.Lock()
	r, ok := t.topics[topic]
	t.mu.Unlock()
	if ok {
		return r, nil
	}
	res, err := t.Transport.RoundTrip(ctx, addr, req)
	if err != nil {
		return res, err
	}
	if r, ok := res.(*meta.Response); ok && len(r.Topics) == 1 && r.Topics[0].Name == topic && r.Topics[0].ErrorCode == 0 {
		t.mu.Lock()
		t.topics[topic] = r
		if len(t.parts) >= maxSources {
			clear(t.parts)
		}
		t.parts[topic] = len(r.Topics[0].Partitions)
		t.mu.Unlock()
	}
	return res, nil
}
