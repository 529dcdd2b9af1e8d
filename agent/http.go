package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// MaxFileSeries bounds the per-file series of logagent_file_bytes_behind
// per input: only the files furthest behind get one. The per-input total,
// logagent_input_bytes_behind, counts every file.
const MaxFileSeries = 20

// DefaultUnhealthyAfter is used when the agent has no http: section.
const DefaultUnhealthyAfter = 5 * time.Minute

// Limits of the HTTP listener. It faces the network: clients that connect
// and never read, or thousands of them, must neither grow the agent's
// memory nor take the descriptors that log files need.
const (
	// MaxHTTPConns is how many connections are open at once; more wait in
	// the kernel's accept queue, holding no descriptor of the agent. Far
	// below any sane descriptor limit (the package's unit sets 65536; Go
	// raises the soft limit to the hard one at start).
	MaxHTTPConns = 32
	// A request's headers and body must arrive within httpReadTimeout, a
	// response be taken within httpWriteTimeout (a client that does not
	// read frees its buffers then), and an idle keep-alive connection is
	// closed after httpIdleTimeout.
	httpReadTimeout    = 10 * time.Second
	httpWriteTimeout   = 30 * time.Second
	httpIdleTimeout    = 60 * time.Second
	httpMaxHeaderBytes = 16 << 10
	// MaxStatusFiles bounds the files /status lists per input (the ones
	// furthest behind), so that a response does not grow with the number
	// of files; the input's counts and bytes behind cover every file.
	MaxStatusFiles = 500
)

// NewServer returns the server for the agent's listener, with the timeouts
// above, and ln limited to MaxHTTPConns connections at once; serve the
// one on the other.
func NewServer(ln net.Listener, h http.Handler) (*http.Server, net.Listener) {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
	}, netutil.LimitListener(ln, MaxHTTPConns)
}

// Handler serves, for this agent:
//
//	/metrics  Prometheus metrics, read from the agent's counters at scrape time
//	/healthz  200 while every output delivers, 503 once one has failed
//	          continuously for longer than http.unhealthy_after
//	/status   the JSON of Status, which `logagent status` shows
//
// extra collectors (build info, say) are added to /metrics.
func (a *Agent) Handler(extra ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&collector{a: a},
		relayCollector{a: a},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, c := range extra {
		reg.MustRegister(c)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", a.serveHealth)
	mux.HandleFunc("GET /status", a.serveStatus)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "logagent: /metrics /healthz /status")
	})
	return mux
}

// Unhealthy returns a reason when an output has failed continuously for
// longer than http.unhealthy_after, or "".
func (a *Agent) Unhealthy(now time.Time) string {
	cfg, _, runners := a.running()
	after := DefaultUnhealthyAfter
	if cfg.HTTP != nil && cfg.HTTP.UnhealthyAfter > 0 {
		after = cfg.HTTP.UnhealthyAfter
	}
	for _, r := range runners {
		since := r.metrics.FailingSince()
		if !since.IsZero() && now.Sub(since) > after {
			return fmt.Sprintf("output %s failing for %s (unhealthy_after %s): %s",
				r.cfg.ID, now.Sub(since).Round(time.Second), after, r.metrics.LastError())
		}
	}
	return ""
}

func (a *Agent) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if why := a.Unhealthy(time.Now()); why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, why)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(a.Status())
}

// collector reads the agent's atomic counters when Prometheus scrapes, so
// that counting costs the hot path nothing more than it did.
type collector struct{ a *Agent }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("logagent_"+name, help, labels, nil)
}

var (
	descInputLines       = desc("input_lines_total", "Messages read and handed to the outputs.", "input")
	descInputBytes       = desc("input_bytes_total", "Bytes of file the messages read cover.", "input")
	descInputFilesOpen   = desc("input_files_open", "Files open for reading.", "input")
	descInputBehind      = desc("input_bytes_behind", "Sum over open files of size minus committed offset.", "input")
	descInputTruncations = desc("input_truncations_total", "Files seen truncated (copytruncate rotation).", "input")
	descInputUnread      = desc("input_closed_unread_total", "Removed files closed before they were read to the end.", "input")
	descInputWaiting     = desc("input_waiting_seconds", "How long the input's reading has waited for this output (its messages in flight fill its share of max_inflight_bytes, or the output's queue is full); absent while it reads freely.", "input", "output")
	descInputInflight    = desc("input_inflight_bytes", "Read buffers held by the input's messages in flight.", "input")
	descInputDirs        = desc("input_directories", "Directories of the input's globs, by whether inotify watches them or they are polled.", "input", "mode")
	descInputDropped     = desc("input_dropped_lines_total", "Messages dropped by include_lines and exclude_lines (their offsets are committed all the same).", "input")
	descFileBehind       = desc("file_bytes_behind", "Size minus committed offset, for the files furthest behind (at most 20 per input).", "input", "path")

	descOutMessages  = desc("output_messages_total", "Messages delivered.", "output", "type")
	descOutBytes     = desc("output_bytes_total", "Bytes of the messages delivered (of their envelopes with format: json).", "output", "type")
	descOutBatches   = desc("output_batches_total", "Batches delivered.", "output", "type")
	descOutRetries   = desc("output_retries_total", "Sends that failed and were retried.", "output", "type")
	descOutPermanent = desc("output_permanent_errors_total", "Messages dropped as undeliverable by this output.", "output", "type")
	descOutLatency   = desc("output_send_duration_seconds", "Duration of sends that delivered.", "output", "type")
	descOutHealthy   = desc("output_healthy", "1 when the last send succeeded, 0 while sends fail.", "output", "type")
	descOutFailing   = desc("output_failing_seconds", "How long sends have failed without a success, 0 when healthy.", "output", "type")
	descOutHosts     = desc("output_hosts", "Hosts configured, for outputs sending to a pool of hosts.", "output", "type")
	descOutHostsOK   = desc("output_hosts_healthy", "Hosts healthy, for outputs sending to a pool of hosts.", "output", "type")
	descHostHealthy  = desc("output_host_healthy", "1 when the host is healthy.", "output", "host")

	descInflightUsed  = desc("inflight_bytes", "Read buffers held by messages in flight.")
	descInflightLimit = desc("inflight_limit_bytes", "max_inflight_bytes.")
	descCkptWrites    = desc("checkpoint_writes_total", "Checkpoint flushes that wrote offsets (journal appends and snapshots).")
	descCkptSyncs     = desc("checkpoint_syncs_total", "fdatasyncs and fsyncs of checkpoint files.")
	descCkptAge       = desc("checkpoint_age_seconds", "Seconds since the checkpoint was last written (since start if never).")
	descCkptFailing   = desc("checkpoint_write_failing", "1 when the last checkpoint write failed.")
	descStarted       = desc("start_time_seconds", "When the running configuration started, in Unix seconds.")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descInputLines, descInputBytes, descInputFilesOpen, descInputBehind, descInputTruncations, descInputUnread, descInputDropped, descInputWaiting, descInputInflight, descInputDirs, descFileBehind,
		descOutMessages, descOutBytes, descOutBatches, descOutRetries, descOutPermanent, descOutLatency,
		descOutHealthy, descOutFailing, descOutHosts, descOutHostsOK, descHostHealthy,
		descInflightUsed, descInflightLimit, descCkptWrites, descCkptSyncs, descCkptAge, descCkptFailing, descStarted,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	now := time.Now()
	_, inputs, runners := a.running()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, ir := range inputs {
		id := ir.cfg.ID
		m := ir.in.Metrics()
		counter(descInputLines, m.Lines.Load(), id)
		counter(descInputBytes, m.Bytes.Load(), id)
		counter(descInputTruncations, m.Truncations(), id)
		counter(descInputUnread, m.ClosedUnread.Load(), id)
		counter(descInputDropped, ir.dropped(), id)
		gauge(descInputInflight, float64(ir.budget.Used()), id)
		if since, outs := ir.waiting(); len(outs) > 0 {
			for _, o := range outs {
				gauge(descInputWaiting, now.Sub(since).Seconds(), id, o)
			}
		}
		watched, polled := ir.in.Dirs()
		gauge(descInputDirs, float64(watched), id, "watched")
		gauge(descInputDirs, float64(polled), id, "polled")
		files := ir.in.Files()
		gauge(descInputFilesOpen, float64(len(files)), id)
		var behind int64
		fs := make([]FileStatus, 0, len(files))
		for _, f := range files {
			s := fileStatus(f)
			behind += s.Behind
			fs = append(fs, s)
		}
		gauge(descInputBehind, float64(behind), id)
		sort.Slice(fs, func(i, j int) bool {
			return fs[i].Behind > fs[j].Behind || fs[i].Behind == fs[j].Behind && fs[i].Path < fs[j].Path
		})
		seen := map[string]bool{} // two open files can share a path for a moment (rotation)
		for _, f := range fs[:min(len(fs), MaxFileSeries)] {
			if !seen[f.Path] {
				seen[f.Path] = true
				gauge(descFileBehind, float64(f.Behind), id, f.Path)
			}
		}
	}
	for _, r := range runners {
		id, typ := r.cfg.ID, r.cfg.Type
		m := &r.metrics
		counter(descOutMessages, m.Messages.Load(), id, typ)
		counter(descOutBytes, m.Bytes.Load(), id, typ)
		counter(descOutBatches, m.Batches.Load(), id, typ)
		counter(descOutRetries, m.Retries.Load(), id, typ)
		counter(descOutPermanent, m.Permanent.Load(), id, typ)
		bounds, cum, sum, count := m.latency.snapshot()
		buckets := make(map[float64]uint64, len(bounds))
		for i, b := range bounds {
			buckets[b] = cum[i]
		}
		ch <- prometheus.MustNewConstHistogram(descOutLatency, count, sum, buckets, id, typ)
		if since := m.FailingSince(); since.IsZero() {
			gauge(descOutHealthy, 1, id, typ)
			gauge(descOutFailing, 0, id, typ)
		} else {
			gauge(descOutHealthy, 0, id, typ)
			gauge(descOutFailing, now.Sub(since).Seconds(), id, typ)
		}
		if hl, ok := r.out.(hostLister); ok {
			hosts := hl.Hosts()
			ok := 0
			for _, h := range hosts {
				v := 0.0
				if h.Healthy {
					ok++
					v = 1
				}
				gauge(descHostHealthy, v, id, h.Addr)
			}
			gauge(descOutHosts, float64(len(hosts)), id, typ)
			gauge(descOutHostsOK, float64(ok), id, typ)
		}
	}
	gauge(descInflightUsed, float64(a.pool.Used()))
	gauge(descInflightLimit, float64(a.pool.Limit()))
	writes, last, err := a.store.Stats()
	counter(descCkptWrites, writes)
	counter(descCkptSyncs, a.store.Syncs())
	if last.IsZero() {
		last = a.mon.startedAt()
	}
	if !last.IsZero() {
		gauge(descCkptAge, now.Sub(last).Seconds())
	}
	failing := 0.0
	if err != nil {
		failing = 1
	}
	gauge(descCkptFailing, failing)
	if t := a.mon.startedAt(); !t.IsZero() {
		gauge(descStarted, float64(t.UnixNano())/1e9)
	}
}

// BuildInfo returns the logagent_build_info gauge, always 1.
func BuildInfo(version, commit, goVersion string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "logagent_build_info",
		Help:        "Version of the running binary; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": goVersion},
	})
	g.Set(1)
	return g
}
