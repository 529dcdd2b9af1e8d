package agent

import "testing"

func TestGCPercentFor(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		name       string
		live, rate uint64
		want       int
	}{
		{"nothing live yet", 0, 0, 100},
		{"small heap, quiet", 2 * MiB, 0, 100},
		{"ten thousand idle files", 18 * MiB, 300 << 10, 25},
		{"large heap, a little busy", 18 * MiB, 1 * MiB, 56},
		{"large heap, busy", 18 * MiB, 20 * MiB, 100},
		{"huge heap, quiet", 200 * MiB, 0, 25},
	} {
		if got := gcPercentFor(c.live, c.rate); got != c.want {
			t.Errorf("%s: gcPercentFor(%d, %d) = %d, want %d", c.name, c.live, c.rate, got, c.want)
		}
	}
}

// TestGCState feeds a second of samples at a time: the GOGC is lowered only
// after gcSteady quiet seconds, and raised in the first busy one.
func TestGCState(t *testing.T) {
	const MiB = 1 << 20
	var g gcState
	live, allocs := uint64(18*MiB), uint64(0)
	step := func(rate uint64) int {
		allocs += rate
		return g.next(live, allocs)
	}
	// quiet feeds gcSteady quiet seconds after the one before: GOGC is
	// left until the last, which lowers it to 25.
	quiet := func(after string) {
		t.Helper()
		for i := 1; i < gcSteady; i++ {
			if p := step(100 << 10); p != 0 {
				t.Fatalf("quiet second %d after %s set GOGC %d; want none before %d", i, after, p, gcSteady)
			}
		}
		if p := step(100 << 10); p != 25 {
			t.Fatalf("%d quiet seconds after %s: GOGC %d, want 25", gcSteady, after, p)
		}
	}
	if p := step(0); p != 0 {
		t.Fatalf("first sample set GOGC %d; it has no rate yet", p)
	}
	quiet("the first sample")
	if p := step(100 << 10); p != 0 {
		t.Fatalf("an unchanged GOGC was set again (%d)", p)
	}
	if p := step(50 * MiB); p != 100 {
		t.Fatalf("a busy second set GOGC %d, want 100 at once", p)
	}
	quiet("the burst")
}
