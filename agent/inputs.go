package agent

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/inputs"
	flumein "github.com/logagent/logagent/inputs/flume"
	"github.com/logagent/logagent/inputs/journald"
	"github.com/logagent/logagent/inputs/relay"
	scribein "github.com/logagent/logagent/inputs/scribe"
	"github.com/logagent/logagent/internal/zookeeper"
)

// inputTypes is every input type but file, by the name used in type:. The
// file input, the default type, keeps its keys in InputConfig.
var inputTypes = map[string]func() *inputKind{
	"scribe":   inputKindOf(scribein.DefaultConfig, scribein.New),
	"flume":    inputKindOf(flumein.DefaultConfig, flumein.New),
	"journald": inputKindOf(journald.DefaultConfig, journald.New),
}

// inputKind is one input type with its configuration, decoded into config
// (a pointer to the input package's Config).
type inputKind struct {
	config   any
	validate func() error
	build    func(env inputs.Env) (inputs.Input, error)
}

// inputKindOf adapts an input package (DefaultConfig, New) to the table.
func inputKindOf[C any, I inputs.Input](defaults func() C, newInput func(C, inputs.Env) (I, error)) func() *inputKind {
	return func() *inputKind {
		cfg := defaults()
		return &inputKind{
			config: &cfg,
			validate: func() error {
				if v, ok := any(&cfg).(interface{ Validate() error }); ok {
					return v.Validate()
				}
				return nil
			},
			build: func(env inputs.Env) (inputs.Input, error) {
				return newInput(cfg, env)
			},
		}
	}
}

func inputTypeNames() []string {
	names := []string{"file"}
	for n := range inputTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// commonInputKeys are the keys of InputConfig an input of any type has.
var commonInputKeys = map[string]bool{"id": true, "type": true, "outputs": true}

// decodeNode decodes a file input's keys into c; for another type, the
// common keys into c and the type's own into the type's Config, so that
// each is checked against the right set of keys.
func (c *InputConfig) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got a %s", kindName(n.Kind))
		return
	}
	var typeNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typeNode = n.Content[i+1]
		}
	}
	if typeNode == nil || typeNode.Kind == yaml.ScalarNode && typeNode.Value == "file" {
		d.decodeStruct(n, reflect.ValueOf(c).Elem(), path, nil)
		c.Type = "file"
		return
	}
	newKind, ok := inputTypes[typeNode.Value]
	if !ok || typeNode.Kind != yaml.ScalarNode {
		d.errorf(typeNode, path+".type", "unknown input type %q (one of %s)", typeNode.Value, strings.Join(inputTypeNames(), ", "))
		return
	}
	common := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	own := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if commonInputKeys[n.Content[i].Value] {
			common.Content = append(common.Content, n.Content[i], n.Content[i+1])
		} else {
			own.Content = append(own.Content, n.Content[i], n.Content[i+1])
		}
	}
	d.decodeStruct(common, reflect.ValueOf(c).Elem(), path, nil)
	c.kind = newKind()
	d.decodeStruct(own, reflect.ValueOf(c.kind.config).Elem(), path, commonInputKeys)
}

// Settings returns the type's own configuration (a pointer to the input
// package's Config), or nil for a file input.
func (c *InputConfig) Settings() any {
	if c.kind == nil {
		return nil
	}
	return c.kind.config
}

// validateTyped checks an input of a type other than file: its own keys,
// and that the outputs it names exist.
func validateTyped(in *InputConfig, p string, outputs map[string]*OutputConfig, ids []string) []error {
	errs := []error{logagent.JoinField(p, in.kind.validate())}
	seen := map[string]bool{}
	for j, id := range in.Outputs {
		f := fmt.Sprintf("%s.outputs[%d]", p, j)
		switch {
		case seen[id]:
			errs = append(errs, logagent.FieldErrorf(f, "%q is listed twice", id))
		case outputs[id] == nil:
			errs = append(errs, logagent.FieldErrorf(f, "no output has id %q (outputs: %s)", id, strings.Join(ids, ", ")))
		}
		seen[id] = true
	}
	return errs
}

// dryRunRelay tells what a relay input would do, without listening.
func dryRunRelay(w io.Writer, cfg *Config, ic *InputConfig) {
	what := ic.Type
	if d, ok := ic.kind.config.(interface{ Describe() string }); ok {
		what = d.Describe()
	}
	category := "messages keep their own category"
	if c, ok := ic.kind.config.(interface{ CategoryFor(id string) string }); ok {
		category = fmt.Sprintf("category %q", c.CategoryFor(ic.ID))
	}
	fmt.Fprintf(w, "\ninput %s (%s): %s; %s; outputs %s\n",
		ic.ID, ic.Type, what, category, strings.Join(cfg.routes(ic), ", "))
}

// relayCollector serves, on /metrics, the counters of relay and journald
// inputs and the state of outputs' ZooKeeper discovery, read at scrape time.
type relayCollector struct{ a *Agent }

var (
	descRelay     = desc("relay_total", "What a relay input did, by counter (as fb303's getCounters): calls, received, try_later, connections_rejected, closed_idle, ...", "input", "counter")
	descRelayOpen = desc("relay_connections_open", "Connections open to a relay input.", "input")
	descJournald  = desc("journald_total", "What a journald input did, by counter: entries (read from journalctl), messages and bytes (entries with a MESSAGE, not excluded), excluded (entries of exclude_units), restarts (of journalctl).", "input", "counter")
	descZKOK      = desc("output_zookeeper_ok", "1 while the output's ZooKeeper members are current (connected and listed), 0 while ZooKeeper is unreachable; after the output's first send.", "output")
	descZKMembers = desc("output_zookeeper_members", "Members the output last found in ZooKeeper.", "output")
)

func (c relayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRelay
	ch <- descRelayOpen
	ch <- descJournald
	ch <- descZKOK
	ch <- descZKMembers
}

func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.a.runningRunners() {
		d, ok := r.out.(interface{ Discovery() *zookeeper.Discovery })
		if !ok {
			continue
		}
		started, current, members := d.Discovery().State()
		if !started {
			continue
		}
		v := 0.0
		if current {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descZKOK, prometheus.GaugeValue, v, r.cfg.ID)
		ch <- prometheus.MustNewConstMetric(descZKMembers, prometheus.GaugeValue, float64(members), r.cfg.ID)
	}
	for _, rr := range c.a.runningRelays() {
		switch in := rr.in.(type) {
		case interface{ Counters() map[string]int64 }: // journald
			for name, v := range in.Counters() {
				ch <- prometheus.MustNewConstMetric(descJournald, prometheus.CounterValue, float64(v), rr.cfg.ID, name)
			}
		case interface{ Counters() *relay.Counters }:
			for name, v := range in.Counters().Map() {
				if name == "connections_open" {
					ch <- prometheus.MustNewConstMetric(descRelayOpen, prometheus.GaugeValue, float64(v), rr.cfg.ID)
					continue
				}
				ch <- prometheus.MustNewConstMetric(descRelay, prometheus.CounterValue, float64(v), rr.cfg.ID, name)
			}
		}
	}
}
