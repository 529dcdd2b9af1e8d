package zookeeper

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Registration keeps an ephemeral member node for addr under cfg.Path.
type Registration struct {
	cfg  Config
	addr string
	log  *slog.Logger

	node atomic.Pointer[string] // the node's path while it exists
}

// NewRegistration returns a registration of addr (host:port) under
// cfg.Path; nothing happens until Run.
func NewRegistration(cfg Config, addr string, log *slog.Logger) *Registration {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registration{cfg: cfg, addr: addr, log: log.With("zookeeper", cfg.String(), "advertise", addr)}
}

// Node returns the path of the member node while it exists, or "".
func (r *Registration) Node() string {
	if p := r.node.Load(); p != nil {
		return *p
	}
	return ""
}

// Run creates the member node (the parents as persistent nodes if need
// be), creates it again whenever a session expired, and once ctx is done
// deletes it and closes the session before returning: clients stop being
// sent here as soon as Run has returned. The node is a ServerSet member
// (member_NNNNNNNNNN holding JSON) unless the format is hostport (a node
// named and holding host:port).
func (r *Registration) Run(ctx context.Context) {
	session := make(chan zk.State, 16)
	conn, _, err := zk.Connect(r.cfg.servers(), r.cfg.SessionTimeout, zk.WithLogger(zkLogger{r.log}), zk.WithLogInfo(false),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession {
				select {
				case session <- ev.State:
				default:
				}
			}
		}))
	if err != nil {
		r.log.Error("zookeeper: cannot connect; not registered", "err", err)
		return
	}
	defer conn.Close()
	data, err := memberData(r.cfg.Format, r.addr)
	if err != nil {
		r.log.Error("zookeeper: cannot register", "err", err)
		return
	}
	need := true // the node must be created (again)
	failures := 0
	for {
		if need {
			if err := r.create(conn, data); err != nil {
				failures++
				if failures == 1 {
					r.log.Warn("zookeeper: cannot register yet; trying again", "err", err)
				}
			} else {
				if failures > 0 {
					r.log.Info("zookeeper: registered after all")
				}
				failures, need = 0, false
			}
		}
		var retry <-chan time.Time
		if need {
			retry = time.After(min(250*time.Millisecond<<min(failures, 5), 5*time.Second))
		}
		select {
		case <-ctx.Done():
			if node := r.Node(); node != "" {
				if err := conn.Delete(node, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
					// Closing the session removes it too, once ZooKeeper sees it.
					r.log.Warn("zookeeper: delete member node", "node", node, "err", err)
				} else {
					r.log.Info("zookeeper: unregistered", "node", node)
				}
				r.node.Store(nil)
			}
			return
		case st := <-session:
			if st == zk.StateExpired {
				r.log.Warn("zookeeper: session expired; registering again")
				r.node.Store(nil)
				need = true
			}
		case <-retry:
		}
	}
}

func (r *Registration) create(conn *zk.Conn, data []byte) error {
	if err := makeParents(conn, r.cfg.Path); err != nil {
		return err
	}
	var path string
	var err error
	if r.cfg.Format == "hostport" {
		path, err = conn.Create(r.cfg.Path+"/"+r.addr, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			// Left by our own expired session, not yet removed: replace it.
			if err = conn.Delete(r.cfg.Path+"/"+r.addr, -1); err == nil {
				path, err = conn.Create(r.cfg.Path+"/"+r.addr, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
			}
		}
	} else {
		path, err = conn.Create(r.cfg.Path+"/member_", data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	}
	if err != nil {
		return err
	}
	r.node.Store(&path)
	r.log.Info("zookeeper: registered", "node", path)
	return nil
}

// makeParents creates path and its parents as persistent nodes where they
// do not exist.
func makeParents(conn *zk.Conn, path string) error {
	p := ""
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		p += "/" + part
		_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}
