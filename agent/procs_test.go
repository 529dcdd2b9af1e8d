package agent

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestProcsState(t *testing.T) {
	type step struct {
		raised bool
		cores  float64
		want   procsChange
	}
	quiet := func(n int) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = step{true, 0.1, procsKeep}
		}
		return s
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"light stays on one", []step{{false, 0.01, procsKeep}, {false, 0.7, procsKeep}}},
		{"one busy second raises", []step{{false, 0.2, procsKeep}, {false, 0.75, procsRaise}}},
		{"busy while raised stays", []step{{true, 1.6, procsKeep}, {true, 0.4, procsKeep}}},
		{"lowered after quiet seconds in a row", append(quiet(procsDownAfter-1), step{true, 0.1, procsLower})},
		{"a busy second starts the count over",
			append(append(append(quiet(procsDownAfter-1), step{true, 0.5, procsKeep}), quiet(procsDownAfter-1)...), step{true, 0, procsLower})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s procsState
			for i, st := range tt.steps {
				if got := s.next(st.raised, st.cores); got != st.want {
					t.Fatalf("step %d (raised %v, %.2f cores): got %d, want %d", i, st.raised, st.cores, got, st.want)
				}
			}
		})
	}
}

func TestProcsBacklogRaisesAtOnce(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set: Procs leaves the Ps alone")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: there are no more Ps to raise to")
	}
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	logged := make(logLines, 4)
	p := NewProcs(&Config{}, slog.New(slog.NewTextHandler(logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("automatic Procs start on %d Ps, want 1", got)
	}
	p.Backlog()
	p.Backlog() // never blocks, even before Run takes the first
	defer p.Start()()
	// The backlog is waiting before Run's first tick: it, not a busy
	// second, raises the Ps.
	if line := <-logged; !strings.Contains(line, "backlog") {
		t.Fatalf("raised by something else than the backlog: %s", line)
	}
	if got := runtime.GOMAXPROCS(0); got < 2 {
		t.Fatalf("after a backlog: %d Ps, want the default (%d CPUs)", got, runtime.NumCPU())
	}
}

// logLines is a log writer that hands each line to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}

// The memory of a busy spell is returned once, procsDownAfter quiet
// seconds in a row after it; a quiet agent that was never busy, or
// already returned it, does nothing.
func TestMemState(t *testing.T) {
	var m memState
	var at []int
	cores := []float64{0.1, 0.1, 0.6, 0.1} // quiet, quiet, busy, quiet...
	for i := range 3 * procsDownAfter {
		c := 0.1
		if i < len(cores) {
			c = cores[i]
		}
		if i == procsDownAfter { // a busy second in the count starts it over
			c = 0.5
		}
		if m.next(c) {
			at = append(at, i)
		}
	}
	if want := []int{2 * procsDownAfter}; fmt.Sprint(at) != fmt.Sprint(want) {
		t.Errorf("returned at seconds %v, want %v", at, want)
	}
}
