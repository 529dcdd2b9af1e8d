package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs/file"
	"github.com/logagent/logagent/inputs/journald"
	"github.com/logagent/logagent/outputs/envelope"
)

// DryRunOptions tunes DryRun.
type DryRunOptions struct {
	// Messages is how many messages to show per input.
	Messages int
	// Quiet prints only errors and warnings.
	Quiet bool
}

// DryRun prints what the agent would do with cfg: the files each input
// would read and from where, each output's destination, and the first
// messages with their routing. It sends nothing and writes nothing.
//
// Problems are printed as "error:" or "warning:" lines, even when quiet.
// Errors are what would stop real work: a data_dir the agent would refuse
// or could not write, a checkpoint it cannot read, an input whose matching
// files can none be read, an output whose host names do not resolve (or
// whose TLS or SASL files cannot be read). Warnings are what may be fine,
// or fine later: a glob that matches no file yet, a file that cannot be
// read among others that can. DryRun returns an error if it printed an
// error, or if the checkpoint cannot be read.
func DryRun(ctx context.Context, cfg *Config, w io.Writer, opt DryRunOptions) error {
	entries, err := checkpoint.Load(filepath.Join(cfg.DataDir, checkpoint.FileName))
	if err != nil {
		return err
	}
	info := w
	if opt.Quiet {
		info = io.Discard
	}
	errs := 0
	// problem prints an error or warning: under its context when all is
	// printed, with the context when quiet.
	problem := func(isErr bool, context, format string, args ...any) {
		level := "warning"
		if isErr {
			level = "error"
			errs++
		}
		if opt.Quiet {
			fmt.Fprintf(w, "%s: %s: %s\n", level, context, fmt.Sprintf(format, args...))
		} else {
			fmt.Fprintf(w, "  %s: %s\n", level, fmt.Sprintf(format, args...))
		}
	}
	fmt.Fprintf(info, "config %s: valid\n", cfg.File)
	fmt.Fprintf(info, "data_dir %s: %d checkpointed files\n", cfg.DataDir, len(entries))
	if err := checkpoint.CheckDir(cfg.DataDir); err != nil {
		problem(true, "data_dir", "%v", err)
	}
	for _, w := range cfg.Warnings {
		problem(false, "config", "%s", w)
	}

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
		if ic.kind != nil {
			dryRunRelay(info, cfg, ic)
			if _, ok := ic.kind.config.(*journald.Config); ok {
				cursor := "none: nothing read yet"
				for _, e := range entries {
					if e.Input == ic.ID && e.Cursor != "" {
						cursor = fmt.Sprintf("%s (%d entries delivered)", e.Cursor, e.Offset)
					}
				}
				fmt.Fprintf(info, "  checkpoint %s\n", cursor)
			}
			if c, ok := ic.kind.config.(interface{ Check() error }); ok {
				if err := c.Check(); err != nil {
					problem(true, "input "+ic.ID, "%v", err)
				}
			}
			continue
		}
		fc := cfg.fileConfig(ic, host)
		fmt.Fprintf(info, "\ninput %s: category %q, outputs %s\n", ic.ID, ic.Category, strings.Join(cfg.routes(ic), ", "))
		if ic.Multiline != nil {
			fmt.Fprintf(info, "  multiline: %s\n", ic.Multiline)
		}
		planned := file.Plan(fc, entries)
		if len(planned) == 0 {
			problem(false, "input "+ic.ID, "no file matches yet (%s); files that appear later are read from the beginning", strings.Join(ic.Paths, ", "))
		}
		// A file that cannot be read is an error when the input could
		// read none: a wide glob (the packaged /var/log/*.log) often
		// matches a file or two the service user may not read.
		// What the input skips by design (a link it does not follow, a
		// FIFO) is a warning alone, and not counted.
		unreadable, skipped := 0, 0
		for _, pf := range planned {
			switch {
			case pf.Err == nil:
			case file.Skipped(pf.Err):
				skipped++
			default:
				unreadable++
			}
		}
		shown := 0
		for _, pf := range planned {
			if pf.Err != nil && file.Skipped(pf.Err) {
				problem(false, "input "+ic.ID, "%s skipped: %v", pf.Path, pf.Err)
				continue
			}
			if pf.Err != nil {
				problem(unreadable == len(planned)-skipped, "input "+ic.ID, "%s cannot be read by %s: %v (grant read access, or exclude it)", pf.Path, userName(), pf.Err)
				continue
			}
			cp := "none"
			if pf.Committed >= 0 {
				cp = strconv.FormatInt(pf.Committed, 10)
			}
			fmt.Fprintf(info, "  %s  size %d  id %s  checkpoint %s  start %d (%s)\n",
				pf.Path, pf.Size, pf.ID, cp, pf.Start, startReason(pf, ic))
			if len(pf.Also) > 0 {
				fmt.Fprintf(info, "    also matched as %s: the same file, read once\n", strings.Join(pf.Also, ", "))
			}
			if shown < opt.Messages {
				msgs, err := file.Preview(fc, pf, opt.Messages-shown)
				if err != nil {
					problem(true, "input "+ic.ID, "%s: %v", pf.Path, err)
				}
				shown += len(msgs)
				previews = append(previews, msgs...)
			}
		}
	}

	fmt.Fprintln(info)
	for _, oc := range cfg.Outputs {
		out := outputs[oc.ID]
		desc := oc.Type
		if d, ok := out.(logagent.Describer); ok {
			desc = d.Describe()
		}
		fmt.Fprintf(info, "output %s (%s): %s; format %s; batch %d events / %s / %s\n", oc.ID, oc.Type, desc,
			oc.Format, oc.Batch.MaxEvents, oc.Batch.MaxBytes, oc.Batch.FlushInterval)
		if c, ok := out.(logagent.Checker); ok {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := c.Check(cctx); err != nil {
				// A joined error may hold warnings (*logagent.WarningError)
				// beside errors: each is printed at its level.
				list := []error{err}
				if u, ok := err.(interface{ Unwrap() []error }); ok {
					list = u.Unwrap()
				}
				for _, e := range list {
					var w *logagent.WarningError
					problem(!errors.As(e, &w), "output "+oc.ID, "%s", strings.ReplaceAll(e.Error(), "\n", "; "))
				}
			} else {
				fmt.Fprintf(info, "  destination resolves\n")
			}
			cancel()
		}
	}

	if len(previews) > 0 {
		fmt.Fprintf(info, "\nfirst messages (nothing is sent):\n")
	}
	filters := map[string]*lineFilter{}
	var enc envelope.Encoder
	var buf []byte
	for i := range previews {
		m := &previews[i]
		ic := cfg.input(m.Source.Input)
		f, ok := filters[ic.ID]
		if !ok {
			f = newLineFilter(ic)
			filters[ic.ID] = f
		}
		var dests, jsonOuts []string
		for _, id := range cfg.routes(ic) {
			dest := id
			if d, ok := outputs[id].(logagent.Describer); ok {
				dest += " → " + d.Destination(m)
			}
			dests = append(dests, dest)
			if oc := cfg.output(id); oc != nil && oc.Format == envelope.JSON {
				jsonOuts = append(jsonOuts, id)
			}
		}
		if f != nil && !f.keep(m.Body) {
			fmt.Fprintf(info, "  [%s] %s @%d dropped by include_lines/exclude_lines\n    %s\n", m.Source.Input, m.Source.Path, m.Offset,
				quoteBody(m.Body, 160))
			continue
		}
		fmt.Fprintf(info, "  [%s] %s @%d category=%s → %s\n    %s\n", m.Source.Input, m.Source.Path, m.Offset,
			m.Source.Category, strings.Join(dests, "; "), quoteBody(m.Body, 160))
		if len(jsonOuts) > 0 {
			buf = enc.Append(buf[:0], m)
			fmt.Fprintf(info, "    format json (%s): %s\n", strings.Join(jsonOuts, ", "), cutText(buf, 400))
		}
	}
	if errs > 0 {
		return fmt.Errorf("dry run: %d error(s), printed above: the agent would not do all it is configured to", errs)
	}
	return nil
}

func userName() string {
	uid := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(uid); err == nil {
		return u.Username
	}
	return "uid " + uid
}

func (c *Config) output(id string) *OutputConfig {
	for i := range c.Outputs {
		if c.Outputs[i].ID == id {
			return &c.Outputs[i]
		}
	}
	return nil
}

// cutText returns b, valid UTF-8, or its first n bytes or a little less
// (not to cut a character) and its length.
func cutText(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", b[:cut], len(b))
}

func (c *Config) input(id string) *InputConfig {
	for i := range c.Inputs {
		if c.Inputs[i].ID == id {
			return &c.Inputs[i]
		}
	}
	return nil
}

// startReason says why pf starts where it does, as the input decides it
// (file.StartReason).
func startReason(pf file.PlannedFile, ic *InputConfig) string {
	if pf.Reason == file.StartTooOld {
		return "skip (older than " + shortDuration(ic.IgnoreOlder) + ")"
	}
	return pf.Reason.String()
}

// shortDuration is d without trailing zero units: 72h, not 72h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func quoteBody(b []byte, n int) string {
	s := strconv.Quote(string(b))
	if len(b) > n {
		s = strconv.Quote(string(b[:n])) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return s
}
