package relay

import (
	"context"
	"runtime/debug"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/logagent/logagent/internal/thriftgen/fb303"
)

// fb303Handler serves fb303's monitoring calls for a relay.
type fb303Handler struct {
	s    *Server
	name string
}

// AddFB303 adds fb303's getName, getVersion, getStatus, getStatusDetails,
// getCounters, getCounter and aliveSince to p, served from s; name is what
// getName answers.
func AddFB303(p interface {
	AddToProcessorMap(string, thrift.TProcessorFunction)
}, s *Server, name string) {
	fp := fb303.NewFacebookServiceProcessor(&fb303Handler{s: s, name: name})
	for method, f := range fp.ProcessorMap() {
		p.AddToProcessorMap(method, f)
	}
}

func (h *fb303Handler) GetName(context.Context) (string, error) { return h.name, nil }

func (h *fb303Handler) GetVersion(context.Context) (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version, nil
	}
	return "unknown", nil
}

func (h *fb303Handler) GetStatus(context.Context) (fb303.FbStatus, error) {
	st, _ := h.s.Status()
	switch st {
	case Warning:
		return fb303.FbStatus_WARNING, nil
	case Stopping:
		return fb303.FbStatus_STOPPING, nil
	}
	return fb303.FbStatus_ALIVE, nil
}

func (h *fb303Handler) GetStatusDetails(context.Context) (string, error) {
	_, why := h.s.Status()
	return why, nil
}

func (h *fb303Handler) GetCounters(context.Context) (map[string]int64, error) {
	return h.s.counters.Map(), nil
}

func (h *fb303Handler) GetCounter(_ context.Context, key string) (int64, error) {
	return h.s.counters.Map()[key], nil
}

func (h *fb303Handler) AliveSince(context.Context) (int64, error) { return h.s.started.Unix(), nil }
