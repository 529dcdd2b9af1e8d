package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/logagent/logagent/agent"
)

const defaultStatusAddr = "127.0.0.1:9108"

// maxStatusBytes bounds the /status read: far above what an agent sends
// (agent.MaxStatusFiles files per input).
const maxStatusBytes = 64 << 20

const statusUsage = `Usage: logagent status [--addr HOST:PORT] [-c FILE] [--once]

Shows, from a running agent's /status, each input's open files with the
committed offset, size, percent delivered and rate, and each output's
health, hosts, rate and retries. On a terminal the view refreshes every
second (q or Ctrl-C quits); piped, or with --once, it prints once.

The agent measures the files' rates only while its status is asked for
(and a minute after): a rate not measured yet is shown as —, as in the
first view, or with --once when nobody looked within the last minute.

The address is --addr, else http.listen of the config file (-c) if it can
be read, else ` + defaultStatusAddr + `.

Options:
`

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logagent status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr, configPath string
		once             bool
	)
	fs.StringVar(&addr, "addr", "", "`host:port` of the agent's http listener")
	fs.StringVar(&configPath, "c", agent.DefaultConfigPath, "configuration `file` to take http.listen from")
	fs.StringVar(&configPath, "config", agent.DefaultConfigPath, "configuration `file` (same as -c)")
	fs.BoolVar(&once, "once", false, "print once, even on a terminal")
	fs.Usage = func() {
		fmt.Fprint(stderr, statusUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "logagent status: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if addr == "" {
		addr = addrFromConfig(configPath)
	}
	url := "http://" + dialAddr(addr) + "/status"
	client := &http.Client{Timeout: 5 * time.Second}
	fetch := func() (*agent.Status, error) { return fetchStatus(client, url) }

	out, isFile := stdout.(*os.File)
	if once || !isFile || !isTerminal(out) {
		st, err := fetch()
		if err != nil {
			fmt.Fprintf(stderr, "logagent status: %v\n", err)
			return 1
		}
		render(stdout, st, 0)
		return 0
	}
	return liveView(out, os.Stdin, fetch)
}

// addrFromConfig returns http.listen of the config at path, or the default.
func addrFromConfig(path string) string {
	cfg, err := agent.Load(path)
	if err != nil || cfg.HTTP == nil || cfg.HTTP.Listen == "" {
		return defaultStatusAddr
	}
	return cfg.HTTP.Listen
}

// dialAddr turns a listen address into one to connect to: a wildcard or
// empty host is this machine.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func fetchStatus(client *http.Client, url string) (*agent.Status, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the agent (is it running, with http: listen set?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	var st agent.Status
	// Bounded: whatever answers on the port may not be the agent.
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &st, nil
}

// liveView redraws the status every second, like top, until q, Ctrl-C or
// SIGTERM.
func liveView(out *os.File, in *os.File, fetch func() (*agent.Status, error)) int {
	quit := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if restore, err := cbreak(in); err == nil {
		defer restore()
		go func() {
			r := bufio.NewReader(in)
			for {
				b, err := r.ReadByte()
				if err != nil || b == 'q' || b == 'Q' {
					quit <- struct{}{}
					return
				}
			}
		}()
	}
	// The alternate screen, like top: the shell's screen comes back on exit.
	fmt.Fprint(out, "\x1b[?1049h\x1b[?25l")
	defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var buf bytes.Buffer
	for {
		buf.Reset()
		buf.WriteString("\x1b[H\x1b[2J")
		width, _ := termWidth(out)
		st, err := fetch()
		if err != nil {
			fmt.Fprintf(&buf, "%s  %v\n", time.Now().Format("15:04:05"), err)
		} else {
			render(&buf, st, width)
		}
		buf.WriteString("\nrefreshing every second · q or Ctrl-C quits\n")
		// The terminal is in cbreak mode, with output processing on: \n is
		// still a new line.
		out.Write(buf.Bytes())
		select {
		case <-tick.C:
		case <-quit:
			return 0
		case <-sigs:
			return 0
		}
	}
}

// render writes st as text tables. width, if > 0, is the terminal's: long
// paths are shortened, keeping their end, and lines are cut to fit.
func render(out io.Writer, st *agent.Status, width int) {
	escapeStatus(st)
	var buf bytes.Buffer
	renderTables(&buf, st, width)
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		line = strings.TrimRight(line, " \n")
		if r := []rune(line); width > 0 && len(r) > width {
			line = strings.TrimRight(string(r[:width]), " ")
		}
		io.WriteString(out, line+"\n")
	}
}

func renderTables(w io.Writer, st *agent.Status, width int) {
	now := st.Time
	fmt.Fprintf(w, "logagent on %s", st.Host)
	if !st.Started.IsZero() {
		fmt.Fprintf(w, " · up %s", now.Sub(st.Started).Round(time.Second))
	}
	if st.Config != "" {
		fmt.Fprintf(w, " · %s", st.Config)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "in flight %s of %s", human(st.Inflight.UsedBytes), human(st.Inflight.LimitBytes))
	fmt.Fprintf(w, " · checkpoint: %d writes", st.Checkpoint.Writes)
	if !st.Checkpoint.LastWritten.IsZero() {
		fmt.Fprintf(w, ", last %s ago", ago(now.Sub(st.Checkpoint.LastWritten)))
	}
	if st.Checkpoint.LastError != "" {
		fmt.Fprintf(w, ", FAILING: %s", st.Checkpoint.LastError)
	}
	fmt.Fprintln(w)

	maxPath := 0
	if width > 0 {
		maxPath = max(20, width-64)
	}
	for _, in := range st.Inputs {
		open := max(in.FilesOpen, len(in.Files)) // FilesOpen is 0 from an older agent
		dropped := ""
		if in.DroppedLines > 0 {
			dropped = fmt.Sprintf(" (%d dropped by filters)", in.DroppedLines)
		}
		fmt.Fprintf(w, "\ninput %s: %d files, %s behind · %d lines%s (%s/s) · %s/s read",
			in.ID, open, human(in.BytesBehind), in.Lines, dropped, rateNum(in.LinesPerSec), human(int64(in.BytesPerSec)))
		if in.DirsPolled > 0 {
			fmt.Fprintf(w, " · %d of %d directories polled", in.DirsPolled, in.DirsPolled+in.DirsWatched)
		}
		fmt.Fprintln(w)
		if len(in.WaitingFor) > 0 {
			fmt.Fprintf(w, "  reading waits for output %s", strings.Join(in.WaitingFor, ", "))
			if !in.WaitingSince.IsZero() {
				fmt.Fprintf(w, " since %s", ago(now.Sub(in.WaitingSince)))
			}
			fmt.Fprintf(w, " · %s in flight\n", human(in.InflightBytes))
		}
		if open > len(in.Files) {
			fmt.Fprintf(w, "  (the %d furthest behind shown)\n", len(in.Files))
		}
		if len(in.Files) == 0 {
			fmt.Fprintln(w, "  no file open")
			continue
		}
		pw := len("FILE")
		for _, f := range in.Files {
			pw = max(pw, len([]rune(shorten(f.Path, maxPath))))
		}
		fmt.Fprintf(w, "  %-*s  %9s  %9s  %9s  %11s  %s\n", pw, "FILE", "OFFSET", "SIZE", "DELIVERED", "RATE", "STATE")
		for _, f := range in.Files {
			p := shorten(f.Path, maxPath)
			fmt.Fprintf(w, "  %-*s  %9s  %9s  %8.1f%%  %11s  %s%s\n",
				pw, p, human(f.Offset), human(f.Size), f.Percent, fileRate(f), f.State, eta(f))
		}
	}
	if len(st.Outputs) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "OUTPUT\tTYPE\tHEALTH\tMSG/S\tBYTES/S\tMESSAGES\tRETRIES\tPERMANENT\tLAST ERROR")
		for _, o := range st.Outputs {
			health := "ok"
			if !o.Healthy {
				health = "failing"
				if !o.FailingSince.IsZero() {
					health += " " + ago(now.Sub(o.FailingSince))
				}
			}
			lastErr := ""
			if !o.Healthy {
				lastErr = o.LastError
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/s\t%d\t%d\t%d\t%s\n", o.ID, o.Type, health,
				rateNum(o.MessagesPerSec), human(int64(o.BytesPerSec)), o.Messages, o.Retries, o.Permanent, lastErr)
		}
		tw.Flush()
		for _, o := range st.Outputs {
			if len(o.Hosts) == 0 {
				continue
			}
			fmt.Fprintf(w, "\noutput %s hosts:\n", o.ID)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  HOST\tHEALTH\tFAILURES\tRETRY IN\tLAST ERROR")
			for _, h := range o.Hosts {
				health, retry := "ok", ""
				if !h.Healthy {
					health = "down"
					if !h.RetryAt.IsZero() && h.RetryAt.After(now) {
						retry = ago(h.RetryAt.Sub(now))
					}
				}
				fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\n", h.Addr, health, h.Failures, retry, h.LastError)
			}
			tw.Flush()
		}
	}
}

// escapeStatus escapes, in every string of st that the agent took from
// outside (file names, errors, host names), what a terminal would
// interpret: control characters, escape sequences, invalid UTF-8 and the
// bidirectional overrides that reorder what is shown.
func escapeStatus(st *agent.Status) {
	st.Host, st.Config = escapeText(st.Host), escapeText(st.Config)
	st.Checkpoint.Path = escapeText(st.Checkpoint.Path)
	st.Checkpoint.LastError = escapeText(st.Checkpoint.LastError)
	for i := range st.Inputs {
		in := &st.Inputs[i]
		in.ID = escapeText(in.ID)
		for j, o := range in.WaitingFor {
			in.WaitingFor[j] = escapeText(o)
		}
		for j := range in.Files {
			f := &in.Files[j]
			f.Path, f.State = escapeText(f.Path), escapeText(f.State)
		}
	}
	for i := range st.Outputs {
		o := &st.Outputs[i]
		o.ID, o.Type, o.LastError = escapeText(o.ID), escapeText(o.Type), escapeText(o.LastError)
		for j := range o.Hosts {
			h := &o.Hosts[j]
			h.Addr, h.LastError = escapeText(h.Addr), escapeText(h.LastError)
		}
	}
}

// escapeText writes the runes of s a terminal would act on as Go escapes
// (\x1b, \u202e); s is returned as is when it has none.
func escapeText(s string) string {
	safe := func(r rune) bool {
		return r != utf8.RuneError && !unicode.IsControl(r) && !unicode.Is(unicode.Bidi_Control, r)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case safe(r) || r == utf8.RuneError:
			b.WriteString(s[i : i+n])
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

// fileRate is the rate of f, or — while the agent has not measured it:
// it samples the files' offsets only from the first look at its status on.
func fileRate(f agent.FileStatus) string {
	if f.Rate == nil {
		return "—"
	}
	return human(int64(*f.Rate)) + "/s"
}

// eta is shown after the state of a file far enough behind to be
// catching up.
func eta(f agent.FileStatus) string {
	if f.Behind <= 0 || f.Rate == nil || *f.Rate <= 0 || f.Behind < 1<<20 {
		return ""
	}
	d := time.Duration(float64(f.Behind) / *f.Rate * float64(time.Second))
	return " eta " + d.Round(time.Second).String()
}

// shorten keeps the end of s, which for a path is the part that tells
// files apart.
func shorten(s string, n int) string {
	r := []rune(s)
	if n <= 0 || len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			return fmt.Sprintf("%.1f%s", v, u)
		}
	}
	return ""
}

func rateNum(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 10 || v == 0:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
