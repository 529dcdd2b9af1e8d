package relay

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/internal/zookeeper"
)

// Limits are the keys every relay input type has. An input type's Config
// embeds them inline, so that they are keys of its own.
type Limits struct {
	Listen           string        `yaml:"listen"`
	MaxConnections   int           `yaml:"max_connections"`
	MaxFrameBytes    logagent.Size `yaml:"max_frame_bytes"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	ReadTimeout      time.Duration `yaml:"read_timeout"`
	WriteTimeout     time.Duration `yaml:"write_timeout"`
	MaxInflightBytes logagent.Size `yaml:"max_inflight_bytes"`
}

// DefaultMaxFrameBytes is Flume's limit on a Thrift frame, 16,384,000 bytes.
const DefaultMaxFrameBytes = 16_384_000

// DefaultLimits returns the defaults of every relay input but the port.
func DefaultLimits(listen string) Limits {
	return Limits{
		Listen:           listen,
		MaxConnections:   1000,
		MaxFrameBytes:    DefaultMaxFrameBytes,
		IdleTimeout:      5 * time.Minute,
		ReadTimeout:      30 * time.Second,
		WriteTimeout:     30 * time.Second,
		MaxInflightBytes: 64 << 20,
	}
}

// Validate checks l; problems are *logagent.FieldError values, joined.
func (l *Limits) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, logagent.FieldErrorf(field, format, args...))
	}
	if _, _, err := net.SplitHostPort(l.Listen); err != nil || l.Listen == "" {
		bad("listen", "must be host:port (0.0.0.0:1463, 127.0.0.1:0), got %q", l.Listen)
	}
	if l.MaxConnections < 1 {
		bad("max_connections", "must be >= 1, got %d", l.MaxConnections)
	}
	if l.MaxFrameBytes < 1<<10 || l.MaxFrameBytes > 1<<30 {
		bad("max_frame_bytes", "must be between 1KiB and 1GiB, got %s", l.MaxFrameBytes)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"idle_timeout", l.IdleTimeout}, {"read_timeout", l.ReadTimeout}, {"write_timeout", l.WriteTimeout}} {
		if d.v <= 0 {
			bad(d.key, "must be > 0, got %s", d.v)
		}
	}
	if l.MaxInflightBytes < 1<<20 {
		bad("max_inflight_bytes", "must be at least 1MiB, got %s", l.MaxInflightBytes)
	}
	return errors.Join(errs...)
}

// Options returns the server options of l.
func (l *Limits) Options(compact bool, reg *Register) Options {
	return Options{
		Register:         reg,
		Listen:           l.Listen,
		Compact:          compact,
		MaxConnections:   l.MaxConnections,
		MaxFrameBytes:    int(l.MaxFrameBytes),
		IdleTimeout:      l.IdleTimeout,
		ReadTimeout:      l.ReadTimeout,
		WriteTimeout:     l.WriteTimeout,
		MaxInflightBytes: int64(l.MaxInflightBytes),
	}
}

// Register is a relay's `register:` section: an ephemeral node in
// ZooKeeper while the relay serves, so that agents find it.
type Register struct {
	ZooKeeper zookeeper.Config `yaml:"zookeeper"`
	// Advertise is the host:port clients are to connect to; by default
	// listen, which must then not be a wildcard address.
	Advertise string `yaml:"advertise"`
}

// Validate checks r for a relay listening on listen; problems are
// *logagent.FieldError values relative to the section.
func (r *Register) Validate(listen string) error {
	errs := []error{logagent.JoinField("zookeeper", r.ZooKeeper.Validate())}
	if r.Advertise != "" {
		host, port, err := net.SplitHostPort(r.Advertise)
		if err != nil || host == "" || port == "0" || wildcard(host) {
			errs = append(errs, logagent.FieldErrorf("advertise", "must be the host:port clients connect to, got %q", r.Advertise))
		}
	} else if host, _, err := net.SplitHostPort(listen); err == nil && wildcard(host) {
		errs = append(errs, logagent.FieldErrorf("advertise", "must be set (host:port clients connect to) when listen is a wildcard address (%s)", listen))
	}
	return errors.Join(errs...)
}

func wildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// advertised is the address to register for a server listening on addr.
func (r *Register) advertised(addr net.Addr) string {
	if r.Advertise != "" {
		return r.Advertise
	}
	return addr.String()
}

// Describe tells, for --dry-run, where and within which limits a relay
// serves, and where it registers (r may be nil).
func (l *Limits) Describe(r *Register) string {
	d := fmt.Sprintf("on %s, at most %d connections, frames of %s, %s in flight",
		l.Listen, l.MaxConnections, l.MaxFrameBytes, l.MaxInflightBytes)
	if r != nil {
		addr := r.Advertise
		if addr == "" {
			addr = l.Listen
		}
		d += fmt.Sprintf("; registers %s under %s in zookeeper %s", addr, r.ZooKeeper.Path, strings.Join(r.ZooKeeper.Servers, ","))
	}
	return d
}
