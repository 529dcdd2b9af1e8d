package zookeeper

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/outputs/hostpool"
)

// Pool is what discovery feeds: an output's host pool.
type Pool = hostpool.Target

// A Discovery is what an output's hostpool.Hosted starts, describes,
// checks and stops.
var _ hostpool.Discovery = (*Discovery)(nil)

// Discovery runs a Watcher for an output's host pool: started by the
// output's first Send (building an output, as --dry-run does, starts
// nothing), stopped by its Close.
type Discovery struct {
	cfg  Config
	path string
	w    *Watcher

	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{} // set by Start, under once
	// atomic: read by metrics
	started atomic.Bool
	current atomic.Int64 // the size of the last set handed to the pool

	listOnce sync.Once // --dry-run's listing, shared by Describe and Check
	members  []string
	listErr  error
}

// NewDiscovery returns the discovery of the members under path, or nil
// when cfg is nil (no zookeeper: section). Every method of a nil
// *Discovery does nothing.
func NewDiscovery(cfg *Config, path string, log *slog.Logger) *Discovery {
	if cfg == nil {
		return nil
	}
	return &Discovery{cfg: *cfg, path: path, w: NewWatcher(*cfg, path, log)}
}

// ValidateHosts checks an output's hosts and zookeeper keys together:
// either may be left out, not both. Problems are *logagent.FieldError
// values.
func ValidateHosts(hosts []string, defaultPort int, zk *Config) []error {
	if zk == nil && len(hosts) == 0 {
		return []error{logagent.FieldErrorf("hosts", "must list at least one host:port, or set zookeeper: to find the hosts there")}
	}
	var errs []error
	if len(hosts) > 0 {
		_, errs = hostpool.ParseHosts(hosts, defaultPort)
	}
	if zk != nil {
		errs = append(errs, logagent.JoinField("zookeeper", zk.Validate()))
	}
	return errs
}

// Start starts watching, once; the pool's discovered hosts follow the
// members from then on.
func (d *Discovery) Start(p Pool) {
	if d == nil {
		return
	}
	d.once.Do(func() {
		p.SetNoHostsReason(fmt.Sprintf("%s%s: members not listed yet (ZooKeeper unreachable?)", strings.Join(d.cfg.Servers, ","), d.path))
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel, d.done = cancel, make(chan struct{})
		d.started.Store(true)
		go func() {
			defer close(d.done)
			d.w.Run(ctx, func(addrs []string) {
				d.current.Store(int64(len(addrs)))
				if len(addrs) == 0 {
					p.SetNoHostsReason(fmt.Sprintf("no member under %s in ZooKeeper", d.path))
				}
				p.SetAddrs(addrs)
			})
		}()
	})
}

// Stop stops watching and waits for the watcher to end.
func (d *Discovery) Stop() {
	if d == nil {
		return
	}
	d.once.Do(func() {}) // no Start after Stop
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
}

// State tells, once started, whether the members are current (connected
// and listed) and how many there are; started is false before the first
// Send.
func (d *Discovery) State() (started, ok bool, members int) {
	if d == nil || !d.started.Load() {
		return false, false, 0
	}
	return true, d.w.Err() == nil && d.w.Listed(), int(d.current.Load())
}

func (d *Discovery) list() {
	d.listOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.members, d.listErr = List(ctx, d.cfg, d.path)
	})
}

// Describe lists the members once, for --dry-run: "; zookeeper
// SERVERS/PATH: members A, B", to follow an output's own description.
func (d *Discovery) Describe() string {
	if d == nil {
		return ""
	}
	d.list()
	where := strings.Join(d.cfg.Servers, ",") + d.path
	if d.listErr != nil {
		return "; zookeeper " + where + " (unreachable)"
	}
	if len(d.members) == 0 {
		return "; zookeeper " + where + ": no members yet"
	}
	return "; zookeeper " + where + ": members " + strings.Join(d.members, ", ")
}

// Check returns why ZooKeeper could not be listed, for --dry-run: a
// *logagent.WarningError, as the output starts anyway and finds its hosts
// once ZooKeeper is back.
func (d *Discovery) Check() error {
	if d == nil {
		return nil
	}
	d.list()
	if d.listErr != nil {
		return logagent.Warning(fmt.Errorf("could not reach ZooKeeper %s: %w", strings.Join(d.cfg.Servers, ","), d.listErr))
	}
	return nil
}
