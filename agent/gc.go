package agent

import (
	"cmp"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// The garbage collector lets the heap grow by GOGC percent of what was live
// at the last collection (100: twice) before it collects again. That
// headroom is what makes collections rare when the agent allocates fast;
// when it allocates little, it is only memory held for nothing. An agent
// with thousands of files open holds megabytes that stay live (a
// harvester, a tracker and a checkpoint entry for each) while it allocates
// little, and would still let its heap grow to twice that.
//
// So Procs.Run sets GOGC each second from what the agent allocates: enough
// headroom for gcSpacing of allocation, at least gcMinHeadroom, as a
// percentage of the live heap, between gcMinPercent and 100. It lowers it
// only after gcSteady seconds that all allow the lower value, and raises it
// at once: a burst of reading gets the default headroom within a second.
// With a live heap under gcMinHeadroom, that is the default (100). A GOGC
// or GOMEMLIMIT environment variable turns it off: the operator chose.

const (
	gcSpacing     = 10 // seconds of allocation the headroom is to hold
	gcMinHeadroom = 4 << 20
	gcMinPercent  = 25
	gcSteady      = 10 // seconds
)

// gcPercentFor returns the GOGC for a live heap of live bytes, allocating
// rate bytes a second.
func gcPercentFor(live, rate uint64) int {
	if live == 0 {
		return 100
	}
	headroom := max(uint64(gcMinHeadroom), rate*gcSpacing)
	p := (headroom*100 + live - 1) / live
	return int(min(max(p, gcMinPercent), 100))
}

// gcState chooses the GOGC each second (see above).
type gcState struct {
	allocs uint64           // cumulative bytes allocated at the last sample
	wanted [gcSteady]int    // the last seconds' gcPercentFor, a ring
	n      int              // samples taken
	set    int              // the GOGC set, 0 before the first
	sample []metrics.Sample // tune's scratch
}

// next takes the live heap and the cumulative bytes allocated, and returns
// the GOGC to set, or 0 to leave it.
func (g *gcState) next(live, allocs uint64) int {
	rate := allocs - g.allocs
	first := g.n == 0
	g.allocs = allocs
	g.n++
	if first {
		return 0 // no rate yet
	}
	g.wanted[g.n%gcSteady] = gcPercentFor(live, rate)
	p := 0
	for _, w := range g.wanted {
		p = max(p, w) // 0 in the first gcSteady seconds: see below
	}
	if g.n <= gcSteady {
		return 0 // not gcSteady seconds seen yet: keep the default
	}
	cur := cmp.Or(g.set, 100) // the runtime's default until set
	if p == cur || (p < cur && cur-p < 10) {
		return 0 // small cuts are not worth a change
	}
	g.set = p
	return p
}

// gcTunable reports whether the environment leaves GOGC to the agent.
func gcTunable() bool {
	return os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
}

// tune samples the runtime and sets GOGC if next says so.
func (g *gcState) tune(log *slog.Logger) {
	if g.sample == nil {
		g.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	}
	metrics.Read(g.sample)
	var v [2]uint64
	for i, s := range g.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if p := g.next(v[0], v[1]); p > 0 {
		debug.SetGCPercent(p)
		log.Debug("heap headroom set", "gogc", p, "live_bytes", v[0])
	}
}
