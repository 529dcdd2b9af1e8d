package agent

import (
	"log/slog"
	"sort"

	"github.com/logagent/logagent"
	fileout "github.com/logagent/logagent/outputs/file"
	"github.com/logagent/logagent/outputs/flume"
	"github.com/logagent/logagent/outputs/kafka"
	"github.com/logagent/logagent/outputs/kestrel"
	"github.com/logagent/logagent/outputs/scribe"
	"github.com/logagent/logagent/outputs/stdout"
)

// outputTypes is every output type, by the name used in type:.
var outputTypes = map[string]func() *outputKind{
	"file":    kind(fileout.DefaultConfig, fileout.New),
	"stdout":  kind(stdout.DefaultConfig, stdout.New),
	"scribe":  kind(scribe.DefaultConfig, scribe.New),
	"flume":   kind(flume.DefaultConfig, flume.New),
	"kestrel": kind(kestrel.DefaultConfig, kestrel.New),
	"kafka":   kind(kafka.DefaultConfig, kafka.New),
}

// outputKind is one output type with its configuration, decoded into
// config (a pointer to the output package's Config).
type outputKind struct {
	config          any
	validate        func() error
	maxMessageBytes func() int
	build           func(id string, log *slog.Logger) (logagent.Output, error)
}

// kind adapts an output package (DefaultConfig, New) to the table.
func kind[C any, O logagent.Output](defaults func() C, newOutput func(string, C, *slog.Logger) (O, error)) func() *outputKind {
	return func() *outputKind {
		cfg := defaults()
		return &outputKind{
			config: &cfg,
			validate: func() error {
				if v, ok := any(&cfg).(interface{ Validate() error }); ok {
					return v.Validate()
				}
				return nil
			},
			maxMessageBytes: func() int {
				if m, ok := any(&cfg).(interface{ MaxMessageBytes() int }); ok {
					return m.MaxMessageBytes()
				}
				return 0
			},
			build: func(id string, log *slog.Logger) (logagent.Output, error) {
				return newOutput(id, cfg, log)
			},
		}
	}
}

func outputTypeNames() []string {
	names := make([]string, 0, len(outputTypes))
	for n := range outputTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
