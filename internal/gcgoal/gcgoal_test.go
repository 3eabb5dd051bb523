package gcgoal

import (
	"runtime/debug"
	"testing"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		live, goal uint64
		want       int
	}{
		{2 * mib, 64 * mib, 1000},  // tiny heap: capped
		{8 * mib, 64 * mib, 700},   // goal = 8 MiB × 8 = 64 MiB
		{32 * mib, 64 * mib, 100},  // goal = 32 × 2 = 64 MiB: the default suffices
		{226 * mib, 64 * mib, 100}, // a million keys: never above the default
		{0, 64 * mib, 1000},
	}
	for _, c := range cases {
		if got := Percent(c.live, c.goal); got != c.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.goal/mib, got, c.want)
		}
	}
}

func TestAdjustRespectsGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	if got := Adjust(64 << 20); got != 150 {
		t.Fatalf("Adjust with GOGC=150 set = %d, want 150 kept", got)
	}
	t.Setenv("GOGC", "")
	if got := Adjust(64 << 20); got < 100 || got > MaxPercent {
		t.Fatalf("Adjust = %d", got)
	}
}
