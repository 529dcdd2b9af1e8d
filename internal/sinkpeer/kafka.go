package sinkpeer

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logagent/logagent/internal/tcptest"
)

// maxKafkaRequest is the largest request the Kafka sink reads (Kafka's
// socket.request.max.bytes default).
const maxKafkaRequest = 100 << 20

// Kafka API keys the sink answers.
const (
	keyProduce     = 0
	keyMetadata    = 3
	keyAPIVersions = 18
)

// Highest versions the sink offers. Produce v13 and later name topics by
// id, which the sink does not track.
const (
	maxProduceVersion  = 12
	maxMetadataVersion = 12
)

// Kafka is a one-broker Kafka sink: it answers ApiVersions, Metadata (every
// topic asked for exists, with its partitions all led by this broker) and
// Produce (every partition's records are accepted, at offsets that grow by
// the record counts of its batches' headers) with the kmsg types, and keeps
// no record: the record batches are never decoded. Any other request
// closes the connection.
type Kafka struct {
	*tcptest.Server
	partitions int32

	mu      sync.Mutex
	offsets map[string][]int64 // next offset of each topic's partitions
	records int64
}

// StartKafka starts a Kafka sink on 127.0.0.1 whose topics have partitions
// partitions each. The topics named exist from the start (a request for
// every topic lists them); any other is created when a request names it.
func StartKafka(tb testing.TB, partitions int, topics ...string) *Kafka {
	k := &Kafka{partitions: int32(partitions), offsets: map[string][]int64{}}
	for _, t := range topics {
		k.topic(t)
	}
	k.Server = tcptest.Start(tb, k.serve)
	return k
}

// Records returns how many records the sink has accepted.
func (k *Kafka) Records() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.records
}

func (k *Kafka) serve(c net.Conn) {
	host, portStr, _ := net.SplitHostPort(c.LocalAddr().String())
	port, _ := strconv.Atoi(portStr)
	r := bufio.NewReaderSize(c, 64<<10)
	var req, out []byte
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(size[:])
		if n < 8 || n > maxKafkaRequest {
			return
		}
		if cap(req) < int(n) {
			req = make([]byte, n)
		}
		req = req[:n]
		if _, err := io.ReadFull(r, req); err != nil {
			return
		}
		key := int16(binary.BigEndian.Uint16(req))
		version := int16(binary.BigEndian.Uint16(req[2:]))
		corr := binary.BigEndian.Uint32(req[4:])
		body := req[8:]
		// client id: a nullable string.
		if len(body) < 2 {
			return
		}
		if l := int16(binary.BigEndian.Uint16(body)); l > 0 {
			if len(body) < 2+int(l) {
				return
			}
			body = body[2+int(l):]
		} else {
			body = body[2:]
		}
		kreq := kmsg.RequestForKey(key)
		if kreq == nil || version < 0 || version > kreq.MaxVersion() {
			return
		}
		kreq.SetVersion(version)
		if kreq.IsFlexible() {
			// The request header's tagged fields: the sink knows none.
			var ok bool
			if body, ok = skipTags(body); !ok {
				return
			}
		}
		if err := kreq.ReadFrom(body); err != nil {
			return
		}
		var resp kmsg.Response
		switch q := kreq.(type) {
		case *kmsg.ApiVersionsRequest:
			resp = apiVersions(q)
		case *kmsg.MetadataRequest:
			resp = k.metadata(q, host, int32(port))
		case *kmsg.ProduceRequest:
			pr := k.produce(q)
			if q.Acks == 0 {
				continue
			}
			resp = pr
		default:
			return
		}
		out = append(out[:0], 0, 0, 0, 0)
		out = binary.BigEndian.AppendUint32(out, corr)
		if resp.IsFlexible() && key != keyAPIVersions {
			out = append(out, 0) // no tagged fields in the response header
		}
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// skipTags skips a tagged fields section.
func skipTags(b []byte) ([]byte, bool) {
	n, l := binary.Uvarint(b)
	if l <= 0 {
		return nil, false
	}
	b = b[l:]
	for range n {
		if _, l = binary.Uvarint(b); l <= 0 {
			return nil, false
		}
		b = b[l:]
		size, l := binary.Uvarint(b)
		if l <= 0 || uint64(len(b)-l) < size {
			return nil, false
		}
		b = b[l+int(size):]
	}
	return b, true
}

func apiVersions(q *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := q.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: keyProduce, MinVersion: 0, MaxVersion: min(maxProduceVersion, kmsg.NewPtrProduceRequest().MaxVersion())},
		{ApiKey: keyMetadata, MinVersion: 0, MaxVersion: min(maxMetadataVersion, kmsg.NewPtrMetadataRequest().MaxVersion())},
		{ApiKey: keyAPIVersions, MinVersion: 0, MaxVersion: q.MaxVersion()},
	}
	return resp
}

func (k *Kafka) metadata(q *kmsg.MetadataRequest, host string, port int32) kmsg.Response {
	resp := q.ResponseKind().(*kmsg.MetadataResponse)
	cluster := "sinkpeer"
	resp.ClusterID = &cluster
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: host, Port: port}}
	var topics []string
	if q.Topics == nil {
		// All topics: the seeded ones and those named since.
		k.mu.Lock()
		for t := range k.offsets {
			topics = append(topics, t)
		}
		k.mu.Unlock()
	}
	for _, t := range q.Topics {
		if t.Topic != nil {
			topics = append(topics, *t.Topic)
		}
	}
	for _, t := range topics {
		k.topic(t)
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic = &t
		for p := range k.partitions {
			rp := kmsg.NewMetadataResponseTopicPartition()
			rp.Partition = p
			rp.Leader = 0
			rp.Replicas = []int32{0}
			rp.ISR = []int32{0}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// topic returns the offsets of t, creating it.
func (k *Kafka) topic(t string) []int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	o, ok := k.offsets[t]
	if !ok {
		o = make([]int64, k.partitions)
		k.offsets[t] = o
	}
	return o
}

func (k *Kafka) produce(q *kmsg.ProduceRequest) *kmsg.ProduceResponse {
	resp := q.ResponseKind().(*kmsg.ProduceResponse)
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(q.Topics))
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range q.Topics {
		qt := &q.Topics[i]
		rt := &resp.Topics[i]
		rt.Topic = qt.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(qt.Partitions))
		offsets, ok := k.offsets[qt.Topic]
		if !ok {
			offsets = make([]int64, k.partitions)
			k.offsets[qt.Topic] = offsets
		}
		for j := range qt.Partitions {
			qp := &qt.Partitions[j]
			rp := &rt.Partitions[j]
			rp.Partition = qp.Partition
			rp.LogAppendTime = -1
			if qp.Partition < 0 || qp.Partition >= k.partitions {
				rp.ErrorCode = 3 // UNKNOWN_TOPIC_OR_PARTITION
				continue
			}
			n, ok := countRecords(qp.Records)
			if !ok {
				rp.ErrorCode = 87 // INVALID_RECORD
				continue
			}
			rp.BaseOffset = offsets[qp.Partition]
			offsets[qp.Partition] += n
			k.records += n
		}
	}
	return resp
}

// countRecords adds up the record counts of the headers of the record
// batches (magic 2) in b, without decoding any record.
func countRecords(b []byte) (int64, bool) {
	var n int64
	for len(b) > 0 {
		// baseOffset int64, batchLength int32, partitionLeaderEpoch
		// int32, magic int8, crc, attributes, lastOffsetDelta, ...,
		// recordCount int32 at 57.
		if len(b) < 61 || b[16] != 2 {
			return 0, false
		}
		l := int(int32(binary.BigEndian.Uint32(b[8:])))
		if l < 49 || len(b) < 12+l {
			return 0, false
		}
		n += int64(int32(binary.BigEndian.Uint32(b[57:])))
		b = b[12+l:]
	}
	return n, true
}
