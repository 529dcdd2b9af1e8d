package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs/file"
)

// DryRunOptions tunes DryRun.
type DryRunOptions struct {
	// Messages is how many messages to show per input.
	Messages int
	// Quiet prints nothing unless something is wrong.
	Quiet bool
}

// DryRun prints what the agent would do with cfg: the files each input
// would read and from where, each output's destination, and the first
// messages with their routing. It sends nothing and writes nothing. It
// returns an error only if the checkpoint cannot be read; warnings (no file
// matches yet, a host that does not resolve) are printed.
func DryRun(ctx context.Context, cfg *Config, w io.Writer, opt DryRunOptions) error {
	entries, err := checkpoint.Load(filepath.Join(cfg.DataDir, checkpoint.FileName))
	if err != nil {
		return err
	}
	if opt.Quiet {
		w = io.Discard
	}
	fmt.Fprintf(w, "config %s: valid\n", cfg.File)
	fmt.Fprintf(w, "data_dir %s: %d checkpointed files\n", cfg.DataDir, len(entries))

	outputs := map[string]logagent.Output{}
	for _, oc := range cfg.Outputs {
		out, err := oc.kind.build(oc.ID, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return fmt.Errorf("output %s: %w", oc.ID, err)
		}
		defer out.Close()
		outputs[oc.ID] = out
	}

	host := cfg.hostname()
	var previews []logagent.Message
	for i := range cfg.Inputs {
		ic := &cfg.Inputs[i]
		fc := cfg.fileConfig(ic, host)
		fmt.Fprintf(w, "\ninput %s: category %q, outputs %s\n", ic.ID, ic.Category, strings.Join(cfg.routes(ic), ", "))
		planned := file.Plan(fc, entries)
		if len(planned) == 0 {
			fmt.Fprintf(w, "  no file matches yet (%s); files that appear later are read from the beginning\n", strings.Join(ic.Paths, ", "))
		}
		shown := 0
		for _, pf := range planned {
			if pf.Err != nil {
				fmt.Fprintf(w, "  %s: cannot read: %v\n", pf.Path, pf.Err)
				continue
			}
			cp := "none"
			if pf.Committed >= 0 {
				cp = strconv.FormatInt(pf.Committed, 10)
			}
			fmt.Fprintf(w, "  %s  size %d  id %s  checkpoint %s  start %d (%s)\n",
				pf.Path, pf.Size, pf.ID, cp, pf.Start, startReason(pf, ic))
			if shown < opt.Messages {
				msgs, err := file.Preview(fc, pf, opt.Messages-shown)
				if err != nil {
					fmt.Fprintf(w, "  %s: %v\n", pf.Path, err)
				}
				shown += len(msgs)
				previews = append(previews, msgs...)
			}
		}
	}

	fmt.Fprintln(w)
	for _, oc := range cfg.Outputs {
		out := outputs[oc.ID]
		desc := oc.Type
		if d, ok := out.(logagent.Describer); ok {
			desc = d.Describe()
		}
		fmt.Fprintf(w, "output %s (%s): %s; batch %d events / %s / %s\n", oc.ID, oc.Type, desc,
			oc.Batch.MaxEvents, oc.Batch.MaxBytes, oc.Batch.FlushInterval)
		if c, ok := out.(logagent.Checker); ok {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := c.Check(cctx); err != nil {
				// Printed even when quiet: it is worth knowing.
				fmt.Fprintf(w, "  warning: %v\n", err)
			} else {
				fmt.Fprintf(w, "  destination resolves\n")
			}
			cancel()
		}
	}

	if len(previews) > 0 {
		fmt.Fprintf(w, "\nfirst messages (nothing is sent):\n")
	}
	for i := range previews {
		m := &previews[i]
		ic := cfg.input(m.Source.Input)
		var dests []string
		for _, id := range cfg.routes(ic) {
			dest := id
			if d, ok := outputs[id].(logagent.Describer); ok {
				dest += " → " + d.Destination(m)
			}
			dests = append(dests, dest)
		}
		fmt.Fprintf(w, "  [%s] %s @%d category=%s → %s\n    %s\n", m.Source.Input, m.Source.Path, m.Offset,
			m.Source.Category, strings.Join(dests, "; "), quoteBody(m.Body, 160))
	}
	return nil
}

func (c *Config) input(id string) *InputConfig {
	for i := range c.Inputs {
		if c.Inputs[i].ID == id {
			return &c.Inputs[i]
		}
	}
	return nil
}

func startReason(pf file.PlannedFile, ic *InputConfig) string {
	switch {
	case pf.Committed >= 0 && pf.Committed <= pf.Size:
		return "resume from checkpoint"
	case pf.Committed > pf.Size:
		return "shorter than its checkpoint: from the beginning"
	case pf.Start > 0:
		return "start_at end: new file at first start"
	}
	return "new file: from the beginning"
}

func quoteBody(b []byte, n int) string {
	s := strconv.Quote(string(b))
	if len(b) > n {
		s = strconv.Quote(string(b[:n])) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return s
}
