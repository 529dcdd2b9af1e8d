//go:build !unix

package sinkpeer

import "time"

// CPUTime returns 0: the process's CPU time is only measured on Unix.
func CPUTime() time.Duration { return 0 }
