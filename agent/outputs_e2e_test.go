package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	flumegen "github.com/logagent/logagent/internal/thriftgen/flume"
	scribegen "github.com/logagent/logagent/internal/thriftgen/scribe"
	"github.com/logagent/logagent/internal/thrifttest"
	"github.com/logagent/logagent/outputs/kestrel/kestreltest"
)

// These tests run the whole agent, in process, from files to a real peer
// of each network output, with the peer refusing the first calls the way
// its server does, and count the lines that arrive.

const (
	e2eFiles = 3
	e2eLines = 3000
	hang     = 3 * time.Minute // fails a hung test; no assertion depends on time
)

// writeSeqFiles writes e2eFiles files of e2eLines sequence-numbered lines
// and returns every line.
func writeSeqFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	want := map[string]bool{}
	for f := 0; f < e2eFiles; f++ {
		var b strings.Builder
		for i := 0; i < e2eLines; i++ {
			line := fmt.Sprintf("file%d seq=%06d some payload to make the line longer", f, i)
			want[line] = true
			b.WriteString(line + "\n")
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("app%d.log", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// startAgent runs the agent on the configuration outputYAML (one outputs:
// entry) reading dir/logs/*.log, and returns a function that stops it.
func startAgent(t *testing.T, dir, outputYAML string) func() {
	t.Helper()
	cfgText := fmt.Sprintf(`data_dir: %s/state
shutdown_timeout: 5s
inputs:
  - id: app
    paths: ["%s/logs/*.log"]
    fields: {dc: test}
outputs:
%s
`, dir, dir, outputYAML)
	_, stop := runAgent(t, dir, cfgText)
	return stop
}

// lineSet counts distinct lines received, and duplicates.
type lineSet struct {
	// json: what arrives is an envelope (format: json); its message is
	// the line.
	json bool
	mu   sync.Mutex
	seen map[string]int
}

func (s *lineSet) add(line string) {
	if s.json {
		line = unwrapEnvelope(line)
	}
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	s.seen[line]++
	s.mu.Unlock()
}

func (s *lineSet) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// check waits until every wanted line arrived, then reports missing,
// unexpected and duplicated lines.
func (s *lineSet) check(t *testing.T, want map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for s.distinct() < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	missing, dups := 0, 0
	for l := range want {
		if s.seen[l] == 0 {
			missing++
		}
	}
	for l, n := range s.seen {
		if !want[l] {
			t.Errorf("unexpected line %q", l)
		}
		dups += n - 1
	}
	if missing > 0 {
		t.Fatalf("%d of %d lines missing", missing, len(want))
	}
	t.Logf("%d lines delivered, %d duplicates", len(want), dups)
}

// unwrapEnvelope returns the message of env, the envelope of a line of
// writeSeqFiles, or env marked as bad if it is not one with every field
// right: then check reports it as unexpected.
func unwrapEnvelope(env string) string {
	var e struct {
		Timestamp string            `json:"@timestamp"`
		Message   string            `json:"message"`
		Host      string            `json:"host"`
		Input     string            `json:"input"`
		Category  string            `json:"category"`
		Path      string            `json:"path"`
		Offset    int64             `json:"offset"`
		Fields    map[string]string `json:"fields"`
	}
	dec := json.NewDecoder(strings.NewReader(env))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return "not JSON: " + env
	}
	ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	host, _ := os.Hostname()
	if err != nil || time.Since(ts) > time.Hour || e.Host != host || e.Input != "app" || e.Category != "app" ||
		!strings.HasSuffix(e.Path, ".log") || e.Offset <= 0 || len(e.Fields) != 1 || e.Fields["dc"] != "test" {
		return "bad envelope: " + env
	}
	return e.Message
}

// formatKey returns the output key for format f ("" for the default).
func formatKey(f string) string {
	if f == "" {
		return ""
	}
	return ", format: " + f
}

func e2eDirs(t *testing.T) (string, map[string]bool) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	return dir, writeSeqFiles(t, filepath.Join(dir, "logs"))
}

// scribeSink is a Scribe server that answers TRY_LATER to its first calls.
type scribeSink struct {
	lines    lineSet
	mu       sync.Mutex
	tryLater int
	category string
}

func (s *scribeSink) Log(ctx context.Context, msgs []*scribegen.LogEntry) (scribegen.ResultCode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tryLater > 0 {
		s.tryLater--
		return scribegen.ResultCode_TRY_LATER, nil
	}
	for _, m := range msgs {
		s.category = m.Category
		s.lines.add(strings.TrimSuffix(m.Message, "\n"))
	}
	return scribegen.ResultCode_OK, nil
}

func TestAgentToScribe(t *testing.T) {
	for _, format := range []string{"", "json"} {
		t.Run("format="+format, func(t *testing.T) {
			dir, want := e2eDirs(t)
			sink := &scribeSink{tryLater: 3, lines: lineSet{json: format == "json"}}
			srv := thrifttest.Start(t, scribegen.NewScribeProcessor(sink), false)
			startAgent(t, dir, fmt.Sprintf(`  - {id: scribe, type: scribe, hosts: ["%s"], min_backoff: 10ms, batch: {max_events: 500}%s}`, srv.Addr(), formatKey(format)))
			sink.lines.check(t, want)
			if sink.category != "app" {
				t.Errorf("category = %q, want app", sink.category)
			}
		})
	}
}

// flumeSink is a Flume Thrift source whose channel refuses its first
// batches (FAILED).
type flumeSink struct {
	lines   lineSet
	mu      sync.Mutex
	failed  int
	headers map[string]string
}

func (s *flumeSink) Append(ctx context.Context, e *flumegen.ThriftFlumeEvent) (flumegen.Status, error) {
	return s.AppendBatch(ctx, []*flumegen.ThriftFlumeEvent{e})
}

func (s *flumeSink) AppendBatch(ctx context.Context, events []*flumegen.ThriftFlumeEvent) (flumegen.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed > 0 {
		s.failed--
		return flumegen.Status_FAILED, nil
	}
	for _, e := range events {
		s.headers = e.Headers
		s.lines.add(string(e.Body))
	}
	return flumegen.Status_OK, nil
}

func TestAgentToFlume(t *testing.T) {
	for _, tc := range []struct{ protocol, format string }{{"compact", ""}, {"binary", ""}, {"compact", "json"}} {
		t.Run(tc.protocol+"/format="+tc.format, func(t *testing.T) {
			protocol := tc.protocol
			dir, want := e2eDirs(t)
			sink := &flumeSink{failed: 3, lines: lineSet{json: tc.format == "json"}}
			srv := thrifttest.Start(t, flumegen.NewThriftSourceProtocolProcessor(sink), protocol == "compact")
			startAgent(t, dir, fmt.Sprintf(`  - {id: flume, type: flume, protocol: %s, hosts: ["%s"], min_backoff: 10ms, batch: {max_events: 700}%s}`, protocol, srv.Addr(), formatKey(tc.format)))
			sink.lines.check(t, want)
			sink.mu.Lock()
			defer sink.mu.Unlock()
			for _, k := range []string{"timestamp", "host", "path", "offset", "category", "input", "dc"} {
				if sink.headers[k] == "" {
					t.Errorf("header %q missing: %v", k, sink.headers)
				}
			}
		})
	}
}

func TestAgentToKestrel(t *testing.T) {
	for _, tc := range []struct{ protocol, format string }{{"memcache", ""}, {"thrift", ""}, {"memcache", "json"}, {"thrift", "json"}} {
		t.Run(tc.protocol+"/format="+tc.format, func(t *testing.T) {
			protocol := tc.protocol
			dir, want := e2eDirs(t)
			q := kestreltest.NewQueues()
			// The queue is full for the first items, as a real Kestrel
			// answers NOT_STORED; they must be retried. A Thrift put stops
			// at the first refusal, so each refusal there is one call.
			refusals := map[string]int{"memcache": 50, "thrift": 3}[protocol]
			q.Fault = func(queue string, n int) kestreltest.Answer {
				if n <= refusals {
					return kestreltest.NotStored
				}
				return kestreltest.Store
			}
			var addr string
			if protocol == "memcache" {
				addr = kestreltest.Start(t, q).Addr()
			} else {
				addr = kestreltest.StartThrift(t, q).Addr()
			}
			startAgent(t, dir, fmt.Sprintf(`  - {id: kestrel, type: kestrel, protocol: %s, hosts: ["%s"], min_backoff: 10ms, max_backoff: 200ms%s}`, protocol, addr, formatKey(tc.format)))
			got := lineSet{json: tc.format == "json"}
			deadline := time.Now().Add(hang)
			for got.distinct() < len(want) && time.Now().Before(deadline) {
				for _, item := range q.Drain("app") {
					got.add(string(item))
				}
				time.Sleep(20 * time.Millisecond)
			}
			got.check(t, want)
		})
	}
}

func TestAgentToKafka(t *testing.T) {
	for _, format := range []string{"", "json"} {
		t.Run("format="+format, func(t *testing.T) { testAgentToKafka(t, format) })
	}
}

func testAgentToKafka(t *testing.T, format string) {
	dir, want := e2eDirs(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	// Partition 0 has no leader for the first produce requests: only its
	// messages fail, and only they must be retried.
	cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "app", Partitions: []int32{0}, Err: kerr.NotLeaderForPartition, Count: 3})
	brokers := cluster.ListenAddrs()
	startAgent(t, dir, fmt.Sprintf(`  - {id: kafka, type: kafka, brokers: ["%s"], key: path, min_backoff: 10ms%s}`, strings.Join(brokers, `", "`), formatKey(format)))

	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("app"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := lineSet{json: format == "json"}
	var header bool
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	for got.distinct() < len(want) && ctx.Err() == nil {
		client.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got.add(string(r.Value))
			for _, h := range r.Headers {
				header = header || h.Key == "category" && string(h.Value) == "app"
			}
		})
	}
	got.check(t, want)
	if !header {
		t.Error("no record carried the category header")
	}
}
