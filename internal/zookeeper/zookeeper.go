// Package zookeeper finds the hosts of an output in ZooKeeper and registers
// a relay there, with github.com/go-zookeeper/zk.
//
// A Watcher lists the children of a path and hands the whole set of member
// addresses to its consumer (an output's host pool) each time it changes.
// ZooKeeper watches fire once: after every event the children are listed
// again and the watch re-armed. A member is a node named host:port, a node
// holding host:port, or a Twitter ServerSet member (member_NNNNNNNNNN nodes
// holding JSON), used only while its status is ALIVE. When ZooKeeper cannot
// be reached the last set is kept; after a session expired everything is
// listed again.
//
// Register keeps an ephemeral node for a relay while it runs, recreates it
// after a session expired, and removes it when asked to stop.
package zookeeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/logagent/logagent"
)

// Config is a `zookeeper:` section.
type Config struct {
	Servers []string `yaml:"servers"`
	Path    string   `yaml:"path"`
	// Format of members: auto, hostport or serverset.
	Format string `yaml:"format"`
	// Endpoint names the additionalEndpoint of ServerSet members to use;
	// "" for their serviceEndpoint.
	Endpoint       string        `yaml:"endpoint"`
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// DefaultPort is ZooKeeper's client port, for servers given without one.
const DefaultPort = 2181

// Validate fills in the defaults of keys left out (format auto, session
// timeout 10s) and checks c; problems are *logagent.FieldError values
// relative to the section, joined.
func (c *Config) Validate() error {
	if c.Format == "" {
		c.Format = "auto"
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, logagent.FieldErrorf("servers", "must list at least one ZooKeeper server host:port"))
	}
	for i, s := range c.Servers {
		if _, err := c.server(s); err != nil {
			errs = append(errs, logagent.FieldErrorf(fmt.Sprintf("servers[%d]", i), "%v", err))
		}
	}
	if !strings.HasPrefix(c.Path, "/") || len(c.Path) > 1 && strings.HasSuffix(c.Path, "/") || strings.Contains(c.Path, "//") {
		errs = append(errs, logagent.FieldErrorf("path", "must be an absolute ZooKeeper path such as /logservers/scribe, got %q", c.Path))
	}
	switch c.Format {
	case "auto", "hostport", "serverset":
	default:
		errs = append(errs, logagent.FieldErrorf("format", "must be auto, hostport or serverset, got %q", c.Format))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, logagent.FieldErrorf("session_timeout", "must be at least 1s, got %s", c.SessionTimeout))
	}
	return errors.Join(errs...)
}

func (c *Config) server(s string) (string, error) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(DefaultPort))
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", fmt.Errorf("%q is not host or host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return s, nil
}

func (c *Config) servers() []string {
	out := make([]string, 0, len(c.Servers))
	for _, s := range c.Servers {
		if a, err := c.server(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// String names the section for logs: servers and path.
func (c *Config) String() string {
	return "zookeeper " + strings.Join(c.Servers, ",") + c.Path
}

// endpoint is a host and port of a ServerSet member.
type endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// serverSetMember is the JSON of a Twitter ServerSet member node.
type serverSetMember struct {
	ServiceEndpoint     *endpoint           `json:"serviceEndpoint"`
	AdditionalEndpoints map[string]endpoint `json:"additionalEndpoints"`
	Status              string              `json:"status"`
	Shard               *int                `json:"shard,omitempty"`
}

// errSkip marks a member that is not to be used, not a broken one (a
// ServerSet member not ALIVE).
var errSkip = errors.New("not alive")

// parseServerSet returns the address of a ServerSet member: its
// serviceEndpoint, or the additionalEndpoint named endpoint.
func parseServerSet(data []byte, name string) (string, error) {
	var m serverSetMember
	if err := json.Unmarshal(data, &m); err != nil {
		return "", fmt.Errorf("not ServerSet JSON: %w", err)
	}
	if m.Status != "ALIVE" {
		return "", errSkip
	}
	ep := m.ServiceEndpoint
	if name != "" {
		e, ok := m.AdditionalEndpoints[name]
		if !ok {
			return "", fmt.Errorf("no additionalEndpoint %q", name)
		}
		ep = &e
	}
	if ep == nil || ep.Host == "" || ep.Port < 1 || ep.Port > 65535 {
		return "", errors.New("no valid endpoint")
	}
	return net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), nil
}

// parseHostPort returns s as host:port if it is one.
func parseHostPort(s string) (string, bool) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil || host == "" {
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", false
	}
	return net.JoinHostPort(host, port), true
}

// parseMember returns the address of the member node name holding data,
// in format (auto, hostport, serverset).
func parseMember(format, endpointName, name string, data []byte) (string, error) {
	d := strings.TrimSpace(string(data))
	switch format {
	case "serverset":
		return parseServerSet(data, endpointName)
	case "hostport":
		if a, ok := parseHostPort(d); ok {
			return a, nil
		}
		if a, ok := parseHostPort(name); ok {
			return a, nil
		}
		return "", errors.New("neither the node's name nor its data is host:port")
	}
	if strings.HasPrefix(d, "{") {
		return parseServerSet(data, endpointName)
	}
	if a, ok := parseHostPort(d); ok {
		return a, nil
	}
	if a, ok := parseHostPort(name); ok {
		return a, nil
	}
	return "", errors.New("neither ServerSet JSON nor host:port")
}

// memberData is what Register writes for addr in format.
func memberData(format, addr string) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if format == "hostport" {
		return []byte(addr), nil
	}
	p, _ := strconv.Atoi(port)
	return json.Marshal(serverSetMember{
		ServiceEndpoint:     &endpoint{Host: host, Port: p},
		AdditionalEndpoints: map[string]endpoint{},
		Status:              "ALIVE",
	})
}
