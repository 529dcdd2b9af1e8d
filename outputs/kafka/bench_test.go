package kafka

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logagent/logagent/internal/sinkpeer"
)

// TestPeerProcess is the peer of BenchmarkSend in a child process (see
// sinkpeer); in an ordinary test run it does nothing. Peer "real" is a
// kfake cluster of three brokers that acknowledges without storing, "sink"
// a one-broker sink that answers produce requests without decoding their
// record batches.
func TestPeerProcess(t *testing.T) {
	sinkpeer.Serve(t, func(kind string) string {
		switch kind {
		case "real":
			return strings.Join(newCluster(t, kfake.BlackholeProduce()).ListenAddrs(), ",")
		case "sink":
			return sinkpeer.StartKafka(t, 3, "app", "web", "other").Addr()
		}
		t.Fatalf("unknown peer %q", kind)
		return ""
	})
}

// BenchmarkSend ships batches of 1000 lines of 200 bytes (acks all) to a
// peer in a child process, so that agent-cpu-ms/MB is this process's
// alone: MB/s counts message bodies, allocs/op is per batch.
func BenchmarkSend(b *testing.B) {
	for _, comp := range []string{"none", "lz4", "zstd"} {
		for _, peer := range []string{"real", "sink"} {
			b.Run("comp="+comp+"/peer="+peer, func(b *testing.B) {
				p := sinkpeer.StartChild(b, "TestPeerProcess", peer)
				cfg := configFor(strings.Split(p.Addr, ","))
				cfg.Compression = comp
				o := newOutput(b, cfg)
				batch := batches(testSource("app", "/var/log/app.log"), 1000, 1000, 200)[0]
				sinkpeer.BenchSend(b, p, o, batch)
			})
		}
	}
}
