// Package gcgoal keeps the Go garbage collector from running on a tiny
// heap. keygate's live heap is a few MiB when it holds few credentials, and
// Go's default (GOGC=100, a 4 MiB minimum goal) then collects after every
// few MiB of per-request garbage: at tens of thousands of Checks a second
// that is a quarter of the process's CPU. Adjust raises GOGC while the live
// heap is small so the heap goal is at least a given size, and leaves it
// at 100 once the live heap is large (a store of a million keys), so memory
// never grows more than the default allows there.
package gcgoal

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// MaxPercent caps the GOGC that Adjust sets.
const MaxPercent = 1000

var sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

// Percent returns the GOGC that gives a heap goal of at least minGoal
// bytes for a live heap of live bytes: 100 or more, at most MaxPercent.
func Percent(live, minGoal uint64) int {
	if live == 0 {
		return MaxPercent
	}
	p := 100
	if live < minGoal {
		p = int((minGoal - live) * 100 / live)
	}
	return max(100, min(p, MaxPercent))
}

// Adjust sets GOGC from the current live heap so the heap goal is at least
// minGoal, unless the GOGC environment variable is set (the operator's
// choice wins). It returns the percent in force.
func Adjust(minGoal uint64) int {
	if os.Getenv("GOGC") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	metrics.Read(sample)
	var live uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		live = sample[0].Value.Uint64()
	}
	p := Percent(live, minGoal)
	debug.SetGCPercent(p)
	return p
}
