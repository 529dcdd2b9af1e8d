package agent

import "testing"

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
