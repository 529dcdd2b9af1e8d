package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Watcher follows the members under one path.
type Watcher struct {
	// immutable after NewWatcher
	cfg  Config
	path string
	log  *slog.Logger

	// atomic: the last listing's error, nil once listed
	lastErr atomic.Pointer[error]
	listed  atomic.Bool // a listing succeeded at least once
	// connected is true while the client has a session; watches stay
	// armed across a disconnection, so nothing is listed meanwhile.
	connected atomic.Bool

	staleMu sync.Mutex
	stale   map[string]bool // members whose data watch fired: read again

	// owner goroutine only (Run)
	watching map[string]bool   // members whose data watch is armed
	data     map[string][]byte // their data, as of the watch
}

// NewWatcher returns a watcher of the members under path (for Kestrel,
// the write half of cfg.Path). It does nothing until Run.
func NewWatcher(cfg Config, path string, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{cfg: cfg, path: path, log: log.With("zookeeper", cfg.String(), "path", path)}
	err := error(errNotYet)
	w.lastErr.Store(&err)
	return w
}

var errNotYet = errors.New("not listed yet")

// Path is the path watched.
func (w *Watcher) Path() string { return w.path }

// Err returns why the members may be out of date (ZooKeeper not
// connected, or the last listing failed), or nil.
func (w *Watcher) Err() error {
	if !w.connected.Load() {
		return errors.New("not connected to ZooKeeper")
	}
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Listed reports whether a listing ever succeeded.
func (w *Watcher) Listed() bool { return w.listed.Load() }

// Run lists the members, calls update with their addresses (sorted, no
// duplicates) after every listing that succeeded, and lists again after
// each change, until ctx is done. update is called from Run's goroutine.
// While ZooKeeper cannot be reached, update is not called: the consumer
// keeps the last set.
func (w *Watcher) Run(ctx context.Context, update func(addrs []string)) {
	conn, _, err := zk.Connect(w.cfg.servers(), w.cfg.SessionTimeout, zk.WithLogger(zkLogger{w.log}), zk.WithLogInfo(false),
		zk.WithEventCallback(w.session))
	if err != nil {
		w.setErr(err)
		w.log.Error("zookeeper: cannot connect", "err", err)
		return
	}
	defer conn.Close()
	w.watching, w.data = map[string]bool{}, map[string][]byte{}
	// Every watch armed is forwarded to kick until it fires or Run
	// returns: a member's data watch stays armed across listings.
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	var fwd sync.WaitGroup
	defer fwd.Wait()
	defer close(done)
	watch := func(ch <-chan zk.Event, onFire func()) {
		fwd.Add(1)
		go func() {
			defer fwd.Done()
			select {
			case <-ch:
				if onFire != nil {
					onFire()
				}
				select {
				case kick <- struct{}{}:
				default:
				}
			case <-done:
			}
		}()
	}
	backoff := 250 * time.Millisecond
	failures := 0
	var last []string
	for {
		addrs, err := w.list(conn, watch)
		if err != nil {
			w.setErr(err)
			failures++
			if failures == 1 {
				if w.listed.Load() {
					w.log.Warn("zookeeper unreachable; keeping the last members", "members", len(last), "err", err)
				} else {
					w.log.Warn("zookeeper unreachable; no members yet, trying again", "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if failures > 0 {
			w.log.Info("zookeeper reached again", "members", len(addrs))
		}
		failures, backoff = 0, 250*time.Millisecond
		w.lastErr.Store(nil)
		w.listed.Store(true)
		if !slices.Equal(addrs, last) {
			w.log.Info("zookeeper members", "members", addrs)
			last = addrs
		}
		update(addrs)
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
	}
}

func (w *Watcher) setErr(err error) { w.lastErr.Store(&err) }

// session follows the client's connection, from the library's goroutine.
func (w *Watcher) session(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		if !w.connected.Swap(true) && w.listed.Load() {
			w.log.Info("zookeeper connected again")
		}
	case zk.StateDisconnected, zk.StateExpired:
		if w.connected.Swap(false) {
			w.log.Warn("zookeeper disconnected; keeping the last members, reconnecting", "state", ev.State.String())
		}
	}
}

// list lists the children of the path with a watch, and the data of those
// not yet watched with a watch each; watch forwards each watch's event to
// the next listing. Data watches stay armed across listings (one per
// member), so that listing again does not pile them up.
func (w *Watcher) list(conn *zk.Conn, watch func(<-chan zk.Event, func())) ([]string, error) {
	children, _, ch, err := conn.ChildrenW(w.path)
	if errors.Is(err, zk.ErrNoNode) {
		// No member has registered yet: no members, and a watch for the
		// path's creation.
		ok, _, ech, err := conn.ExistsW(w.path)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", w.path, err)
		}
		watch(ech, nil)
		if ok {
			return nil, errors.New("created while listed") // list again
		}
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", w.path, err)
	}
	watch(ch, nil)
	// Members whose data watch fired since are read again, with a new
	// watch.
	w.staleMu.Lock()
	for name := range w.stale {
		delete(w.watching, name)
	}
	w.stale = nil
	w.staleMu.Unlock()
	var addrs []string
	present := map[string]bool{}
	for _, name := range children {
		present[name] = true
		data, ok := w.data[name]
		if !w.watching[name] {
			var dch <-chan zk.Event
			data, _, dch, err = conn.GetW(w.path + "/" + name)
			if errors.Is(err, zk.ErrNoNode) {
				continue // gone since the listing: the children watch fired
			}
			if err != nil {
				return nil, fmt.Errorf("get %s/%s: %w", w.path, name, err)
			}
			w.watching[name], w.data[name], ok = true, data, true
			name := name
			watch(dch, func() {
				w.staleMu.Lock()
				if w.stale == nil {
					w.stale = map[string]bool{}
				}
				w.stale[name] = true
				w.staleMu.Unlock()
			})
		}
		if !ok {
			continue
		}
		addr, err := parseMember(w.cfg.Format, w.cfg.Endpoint, name, data)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			w.log.Warn("zookeeper: member skipped", "member", name, "err", err)
			continue
		}
		if !slices.Contains(addrs, addr) {
			addrs = append(addrs, addr)
		}
	}
	for name := range w.watching {
		if !present[name] {
			// Its watch fires (deleted) or fired: forget it.
			delete(w.watching, name)
			delete(w.data, name)
		}
	}
	slices.Sort(addrs)
	return addrs, nil
}

// zkLogger sends the library's log to slog at debug level: its reconnect
// messages would otherwise flood the log while ZooKeeper is down; the
// watcher logs what matters.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }

// List returns the members under path once, for --dry-run; it gives up
// when ctx is done.
func List(ctx context.Context, cfg Config, path string) ([]string, error) {
	conn, _, err := zk.Connect(cfg.servers(), cfg.SessionTimeout, zk.WithLogger(zkLogger{slog.New(slog.DiscardHandler)}), zk.WithLogInfo(false))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	type result struct {
		addrs []string
		err   error
	}
	res := make(chan result, 1)
	go func() {
		children, _, err := conn.Children(path)
		if errors.Is(err, zk.ErrNoNode) {
			res <- result{} // nobody registered yet
			return
		}
		if err != nil {
			res <- result{err: fmt.Errorf("list %s: %w", path, err)}
			return
		}
		var addrs []string
		for _, name := range children {
			data, _, err := conn.Get(path + "/" + name)
			if err != nil {
				continue
			}
			if a, err := parseMember(cfg.Format, cfg.Endpoint, name, data); err == nil && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
		slices.Sort(addrs)
		res <- result{addrs: addrs}
	}()
	select {
	case r := <-res:
		return r.addrs, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s unreachable: %w", cfg.String(), ctx.Err())
	}
}
