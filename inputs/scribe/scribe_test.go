package scribe

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.uber.org/goleak"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs"
	"github.com/logagent/logagent/internal/testenv"
	"github.com/logagent/logagent/internal/thriftgen/fb303"
	gen "github.com/logagent/logagent/internal/thriftgen/scribe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeOutputs stands for the agent's outputs: it keeps every chunk
// published, to be acknowledged by the test.
type fakeOutputs struct {
	mu      sync.Mutex
	chunks  []*logagent.Chunk
	failing string
	got     chan struct{}
}

func (f *fakeOutputs) publish(ctx context.Context, c *logagent.Chunk) error {
	c.Expect(1)
	f.mu.Lock()
	f.chunks = append(f.chunks, c)
	f.mu.Unlock()
	f.got <- struct{}{}
	return nil
}

func (f *fakeOutputs) fail() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failing
}

func (f *fakeOutputs) last() *logagent.Chunk {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.chunks[len(f.chunks)-1]
}

// start runs a scribe input on 127.0.0.1 until the test ends.
func start(t *testing.T, edit func(*Config)) (*Input, *fakeOutputs) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := &fakeOutputs{got: make(chan struct{}, 100)}
	in, err := New(cfg, inputs.Env{ID: "relay", Host: "h", Publish: f.publish, Failing: f.fail,
		DrainTimeout: 30 * time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		// Calls still waiting are answered once the outputs acknowledge.
		f.mu.Lock()
		for _, c := range f.chunks {
			c.Ack(len(c.Messages))
		}
		f.mu.Unlock()
		<-done
	})
	return in, f
}

type client struct {
	*gen.ScribeClient
	fb *fb303.FacebookServiceClient
	t  thrift.TTransport
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	sock := thrift.NewTSocketConf(addr, &thrift.TConfiguration{ConnectTimeout: 30 * time.Second, SocketTimeout: 60 * time.Second})
	trans := thrift.NewTFramedTransportConf(sock, nil)
	if err := trans.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trans.Close() })
	pf := thrift.NewTBinaryProtocolFactoryConf(nil)
	return &client{ScribeClient: gen.NewScribeClientFactory(trans, pf), fb: fb303.NewFacebookServiceClientFactory(trans, pf), t: trans}
}

func TestLogAnswersOKAfterDelivery(t *testing.T) {
	in, f := start(t, nil)
	c := dial(t, in.Addr())
	res := make(chan gen.ResultCode, 1)
	go func() {
		r, err := c.Log(context.Background(), []*gen.LogEntry{
			{Category: "a", Message: "one\n"},
			{Category: "b", Message: "two\n\n"},
			{Category: "a", Message: "three"},
		})
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	<-f.got
	ch := f.last()
	select {
	case r := <-res:
		t.Fatalf("Log answered %v before the outputs acknowledged", r)
	default:
	}
	var got []string
	for _, m := range ch.Messages {
		got = append(got, m.Source.Category+":"+string(m.Body))
	}
	if want := "a:one|b:two\n|a:three"; strings.Join(got, "|") != want {
		t.Fatalf("messages %q, want %q", strings.Join(got, "|"), want)
	}
	if ch.Messages[0].Source != ch.Messages[2].Source || ch.Messages[0].Source.Input != "relay" {
		t.Fatalf("sources: %+v %+v", ch.Messages[0].Source, ch.Messages[2].Source)
	}
	ch.Ack(len(ch.Messages))
	if r := <-res; r != gen.ResultCode_OK {
		t.Fatalf("Log answered %v, want OK", r)
	}
	if n := in.Counters().Received.Load(); n != 3 {
		t.Fatalf("received %d, want 3", n)
	}
}

func TestTryLater(t *testing.T) {
	t.Run("output failing", func(t *testing.T) {
		in, f := start(t, nil)
		f.failing = "output k failing"
		c := dial(t, in.Addr())
		if r, err := c.Log(context.Background(), []*gen.LogEntry{{Category: "a", Message: "x"}}); err != nil || r != gen.ResultCode_TRY_LATER {
			t.Fatalf("Log = %v, %v; want TRY_LATER", r, err)
		}
		if st, _ := c.fb.GetStatus(context.Background()); st != fb303.FbStatus_WARNING {
			t.Fatalf("getStatus %v, want WARNING", st)
		}
		if len(f.chunks) != 0 {
			t.Fatal("a chunk was published")
		}
	})
	t.Run("in-flight bound", func(t *testing.T) {
		in, f := start(t, func(c *Config) { c.MaxInflightBytes = 1 << 20 })
		big := strings.Repeat("x", 1<<20)
		go dial(t, in.Addr()).Log(context.Background(), []*gen.LogEntry{{Category: "a", Message: big}})
		<-f.got // the first call holds the whole bound, unacknowledged
		c := dial(t, in.Addr())
		if r, err := c.Log(context.Background(), []*gen.LogEntry{{Category: "a", Message: "x"}}); err != nil || r != gen.ResultCode_TRY_LATER {
			t.Fatalf("Log = %v, %v; want TRY_LATER", r, err)
		}
		f.last().Ack(1)
		testenv.WaitUntil(time.Minute, func() bool { return in.Counters().Received.Load() == 1 })
		go func() { <-f.got; f.last().Ack(1) }()
		if r, err := c.Log(context.Background(), []*gen.LogEntry{{Category: "a", Message: "x"}}); err != nil || r != gen.ResultCode_OK {
			t.Fatalf("Log = %v, %v; want OK once the bound is free", r, err)
		}
	})
}

func TestStopping(t *testing.T) {
	f := &fakeOutputs{got: make(chan struct{}, 10)}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	in, err := New(cfg, inputs.Env{ID: "r", Publish: f.publish, Failing: f.fail, DrainTimeout: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.Run(ctx) }()
	waiting := dial(t, in.Addr())
	other := dial(t, in.Addr())
	// A connection the kernel took but the server has not accepted yet is
	// closed once the relay stops: one call makes sure it was accepted.
	if _, err := other.fb.GetStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := make(chan gen.ResultCode, 1)
	go func() {
		r, _ := waiting.Log(context.Background(), []*gen.LogEntry{{Category: "a", Message: "x"}})
		res <- r
	}()
	<-f.got
	cancel()
	// Stopping: a new call is answered TRY_LATER at once, the call waiting
	// for delivery is answered once it is delivered, and Run returns.
	testenv.WaitUntil(time.Minute, func() bool { st, _ := in.srv.Status(); return st != 0 })
	if r, err := other.Log(context.Background(), []*gen.LogEntry{{Category: "a", Message: "y"}}); err != nil || r != gen.ResultCode_TRY_LATER {
		t.Fatalf("Log while stopping = %v, %v; want TRY_LATER", r, err)
	}
	if st, _ := other.fb.GetStatus(context.Background()); st != fb303.FbStatus_STOPPING {
		t.Fatalf("getStatus %v, want STOPPING", st)
	}
	f.last().Ack(1)
	if r := <-res; r != gen.ResultCode_OK {
		t.Fatalf("the call delivered during the stop got %v", r)
	}
	<-done
}

func TestFB303(t *testing.T) {
	in, _ := start(t, nil)
	c := dial(t, in.Addr())
	ctx := context.Background()
	if st, err := c.fb.GetStatus(ctx); err != nil || st != fb303.FbStatus_ALIVE {
		t.Fatalf("getStatus = %v, %v", st, err)
	}
	if name, err := c.fb.GetName(ctx); err != nil || !strings.Contains(name, "relay") {
		t.Fatalf("getName = %q, %v", name, err)
	}
	if v, err := c.fb.GetVersion(ctx); err != nil || v == "" {
		t.Fatalf("getVersion = %q, %v", v, err)
	}
	if since, err := c.fb.AliveSince(ctx); err != nil || since <= 0 || since > time.Now().Unix() {
		t.Fatalf("aliveSince = %d, %v", since, err)
	}
	if m, err := c.fb.GetCounters(ctx); err != nil || m["connections_open"] != 1 {
		t.Fatalf("getCounters = %v, %v", m, err)
	}
}

// rawCall is a Log call with one entry, framed, written with the binary
// protocol strict or not.
func rawCall(t *testing.T, strict bool) []byte {
	mem := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(mem, &thrift.TConfiguration{TBinaryStrictWrite: &strict})
	ctx := context.Background()
	p.WriteMessageBegin(ctx, "Log", thrift.CALL, 7)
	args := gen.ScribeLogArgs{Messages: []*gen.LogEntry{{Category: "c", Message: "m\n"}}}
	if err := args.Write(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.WriteMessageEnd(ctx)
	frame := binary.BigEndian.AppendUint32(nil, uint32(mem.Len()))
	return append(frame, mem.Bytes()...)
}

func TestNonStrictBinary(t *testing.T) {
	for _, strict := range []bool{false, true} {
		in, f := start(t, nil)
		go func() { <-f.got; f.last().Ack(1) }()
		conn, err := net.Dial("tcp", in.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(rawCall(t, strict)); err != nil {
			t.Fatal(err)
		}
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			t.Fatalf("strict=%v: no answer: %v", strict, err)
		}
		reply := make([]byte, binary.BigEndian.Uint32(size[:]))
		io.ReadFull(conn, reply)
		p := thrift.NewTBinaryProtocolConf(&thrift.TMemoryBuffer{Buffer: bytesBuffer(reply)}, nil)
		name, typ, seq, err := p.ReadMessageBegin(context.Background())
		if err != nil || name != "Log" || typ != thrift.REPLY || seq != 7 {
			t.Fatalf("strict=%v: reply %q %v %d %v", strict, name, typ, seq, err)
		}
		var res gen.ScribeLogResult
		if err := res.Read(context.Background(), p); err != nil || res.GetSuccess() != gen.ResultCode_OK {
			t.Fatalf("strict=%v: result %v %v", strict, res.GetSuccess(), err)
		}
	}
}

// TestLimits: a client that breaks a limit is closed and counted; the
// others keep being served.
func TestLimits(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(*Config)
		send    []byte // what the bad client sends
		counter func(in *Input) int64
	}{
		{"frame too large", func(c *Config) { c.MaxFrameBytes = 1 << 10 },
			[]byte{0, 0, 8, 0}, func(in *Input) int64 { return in.Counters().Oversized.Load() }},
		// read_timeout also bounds the good client's call, from its first
		// byte to its last, which a slow machine may take a while to read
		// even when it arrived whole: it is the bad client's wait.
		{"half a frame", func(c *Config) { c.ReadTimeout = 2 * time.Second },
			[]byte{0, 0, 0, 100, 1, 2}, func(in *Input) int64 { return in.Counters().Slow.Load() }},
		{"idle", func(c *Config) { c.IdleTimeout = 100 * time.Millisecond },
			nil, func(in *Input) int64 { return in.Counters().Idle.Load() }},
		{"garbage", nil,
			[]byte{0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff}, func(in *Input) int64 { return in.Counters().Broken.Load() }},
		{"max connections", func(c *Config) { c.MaxConnections = 1 },
			nil, func(in *Input) int64 { return in.Counters().Rejected.Load() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, f := start(t, tc.edit)
			var good *client
			if tc.name != "idle" { // with a short idle_timeout, a good client could be idle too long
				good = dial(t, in.Addr())
				if _, err := good.fb.GetStatus(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			bad, err := net.Dial("tcp", in.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			bad.Write(tc.send)
			// The server closes the bad connection: the read ends.
			bad.SetReadDeadline(time.Now().Add(2 * time.Minute))
			if _, err := io.Copy(io.Discard, bad); err != nil {
				t.Fatalf("bad client not closed: %v", err)
			}
			if !testenv.WaitUntil(time.Minute, func() bool { return tc.counter(in) >= 1 }) {
				t.Fatalf("counter %d, want 1; counters %v", tc.counter(in), in.Counters().Map())
			}
			if good == nil {
				return
			}
			go func() { <-f.got; f.last().Ack(1) }()
			if r, err := good.Log(context.Background(), []*gen.LogEntry{{Category: "a", Message: "x"}}); err != nil || r != gen.ResultCode_OK {
				t.Fatalf("the good client: %v, %v", r, err)
			}
		})
	}
}

func bytesBuffer(b []byte) *bytes.Buffer { return bytes.NewBuffer(b) }
