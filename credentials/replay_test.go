package credentials

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func replayResult(r int) string {
	switch r {
	case replayFresh:
		return "fresh"
	case replaySeen:
		return "seen"
	case replayFull:
		return "full"
	}
	return strconv.Itoa(r)
}

func TestReplayCacheFreshSeen(t *testing.T) {
	rc := newReplayCache(1024, 600)
	steps := []struct {
		key      string
		exp, now int64
		want     int
	}{
		{"a", 1300, 1000, replayFresh},
		{"a", 1300, 1000, replaySeen},
		{"b", 1300, 1000, replayFresh},
		{"a", 1400, 1100, replaySeen}, // another expiry does not make it new
		{"a", 1600, 1300, replaySeen}, // live until its expiry, inclusive
		{"a", 1601, 1301, replayFresh},
		{"a", 1601, 1301, replaySeen}, // recorded again with the new expiry
		{"a", 1700, 1601, replaySeen},
		{"a", 1902, 1602, replayFresh},
		{"b", 1900, 1600, replayFresh},
		{"", 1900, 1600, replayFresh}, // an empty key is a key
		{"", 1900, 1600, replaySeen},
	}
	for i, s := range steps {
		if got := rc.check(s.key, s.exp, s.now); got != s.want {
			t.Fatalf("step %d: check(%q, %d, %d) = %s, want %s", i, s.key, s.exp, s.now, replayResult(got), replayResult(s.want))
		}
	}
}

// TestReplayCacheGenerations: generations rotate and are dropped whole
// once everything in them has expired, never before.
func TestReplayCacheGenerations(t *testing.T) {
	const period = 100
	rc := newReplayCache(1<<16, period)
	now := int64(1000)
	if rc.check("long", now+450, now) != replayFresh {
		t.Fatal("long: not fresh")
	}
	// Short-lived entries over several periods.
	for i := 0; i < 2000; i++ {
		now++
		if got := rc.check("short-"+strconv.Itoa(i), now+50, now); got != replayFresh {
			t.Fatalf("short-%d: %s", i, replayResult(got))
		}
		if now <= 1450 && rc.check("long", now+450, now) != replaySeen {
			t.Fatalf("long forgotten at %d (expires at 1450)", now)
		}
		if i >= 60 && rc.check("short-"+strconv.Itoa(i-50), now+50, now) != replaySeen {
			t.Fatalf("short-%d forgotten at %d", i-50, now)
		}
	}
	// Only entries of the last few periods are held: the rest were
	// dropped with their generations.
	if n := rc.size(); n > 4*period*replayShards || n < 50 {
		t.Errorf("size() = %d after 2000 short entries of period %d", n, period)
	}
	if got := rc.check("long", now+450, now); got != replayFresh {
		t.Errorf("long after its expiry: %s, want fresh", replayResult(got))
	}
	// Much later, everything goes.
	now += 10_000
	rc.check("x", now+1, now)
	for i := range rc.shards {
		rc.check(keyInShard(t, rc, i), now+1, now)
	}
	if n := rc.size(); n > 2*replayShards {
		t.Errorf("size() = %d long after every entry expired", n)
	}
}

// keyInShard returns a key that falls in shard i of rc.
func keyInShard(t testing.TB, rc *replayCache, i int) string {
	for n := 0; n < 1<<16; n++ {
		k := "shard-" + strconv.Itoa(i) + "-" + strconv.Itoa(n)
		if int(maphash.String(rc.seed, k)%replayShards) == i {
			return k
		}
	}
	t.Fatalf("no key for shard %d", i)
	return ""
}

// TestReplayCacheProperty compares the cache with a reference map over
// simulated time: random keys (so some repeat) with random expiries. A
// key the reference holds as live must be seen; an unbounded cache must
// agree with the reference exactly, and a bounded one may refuse a new
// key (full) only while its shard holds a live entry.
func TestReplayCacheProperty(t *testing.T) {
	for _, tc := range []struct {
		size   int
		period int64
		keys   int
		maxTTL int64
		step   int64
	}{
		{1 << 20, 600, 500, 600, 5},
		{1 << 20, 1, 300, 600, 3},
		{1 << 20, 7, 2000, 40, 2},
		{1 << 20, 600, 50, 1200, 30},
		{64, 600, 400, 600, 5},
		{64, 10, 400, 50, 1},
		{16, 3, 100, 20, 2},
	} {
		t.Run(fmt.Sprintf("size=%d/period=%d/keys=%d/ttl=%d", tc.size, tc.period, tc.keys, tc.maxTTL), func(t *testing.T) {
			seed := uint64(tc.size)*7919 + uint64(tc.period)
			rng := rand.New(rand.NewPCG(seed, uint64(tc.keys)))
			rc := newReplayCache(tc.size, tc.period)
			ref := map[string]int64{} // key → expiry
			now := int64(1_000_000)
			fulls := 0
			for i := 0; i < 60_000; i++ {
				now += rng.Int64N(tc.step + 1)
				key := "k" + strconv.Itoa(rng.IntN(tc.keys))
				exp := now + rng.Int64N(tc.maxTTL+1)
				exp0, held := ref[key]
				live := held && exp0 >= now
				got := rc.check(key, exp, now)
				switch {
				case live && got != replaySeen:
					t.Fatalf("op %d at %d: %s is live until %d and came back %s", i, now, key, exp0, replayResult(got))
				case !live && got == replaySeen:
					t.Fatalf("op %d at %d: %s (expired at %d, held %v) came back seen", i, now, key, exp0, held)
				case got == replayFull:
					if tc.size >= 1<<20 {
						t.Fatalf("op %d: full in a cache that cannot fill", i)
					}
					shard := maphash.String(rc.seed, key) % replayShards
					ok := false
					for k, e := range ref {
						if e >= now && maphash.String(rc.seed, k)%replayShards == shard {
							ok = true
							break
						}
					}
					if !ok {
						t.Fatalf("op %d at %d: %s refused as full while its shard holds nothing live", i, now, key)
					}
					fulls++
				case got == replayFresh:
					ref[key] = exp
				}
			}
			if tc.size < 1<<20 && fulls == 0 {
				t.Logf("the bounded cache never filled")
			}
		})
	}
}

// TestReplayCacheBounded: a cache of 32 full of live entries refuses new
// ones, never evicts a live one, and accepts again once they expire.
func TestReplayCacheBounded(t *testing.T) {
	rc := newReplayCache(32, 600)
	const now, exp = 1000, 1300
	var fresh []string
	full := 0
	for i := 0; i < 1000; i++ {
		k := "key-" + strconv.Itoa(i)
		switch got := rc.check(k, exp, now); got {
		case replayFresh:
			fresh = append(fresh, k)
		case replayFull:
			full++
		default:
			t.Fatalf("%s: %s", k, replayResult(got))
		}
	}
	if len(fresh) != 32 || full != 1000-32 || rc.size() != 32 {
		t.Fatalf("fresh %d, full %d, size %d; want 32, %d, 32", len(fresh), full, rc.size(), 1000-32)
	}
	for tick := int64(now); tick <= exp; tick += 50 {
		for _, k := range fresh {
			if got := rc.check(k, tick+300, tick); got != replaySeen {
				t.Fatalf("at %d, %s: %s, want seen (never evicted)", tick, k, replayResult(got))
			}
		}
		if got := rc.check("newcomer-"+strconv.FormatInt(tick, 10), tick+300, tick); got != replayFull {
			t.Fatalf("at %d a new key: %s, want full", tick, replayResult(got))
		}
	}
	// At exp the entries are still live; a second later they are gone.
	if got := rc.check(fresh[0], exp+300, exp); got != replaySeen {
		t.Fatalf("at its expiry: %s", replayResult(got))
	}
	accepted := 0
	for i := 0; i < 1000; i++ {
		if rc.check("later-"+strconv.Itoa(i), exp+301, exp+1) == replayFresh {
			accepted++
		}
	}
	if accepted != 32 {
		t.Errorf("after expiry accepted %d new keys, want 32", accepted)
	}
	if got := rc.check(fresh[1], exp+301, exp+1); got == replaySeen {
		t.Errorf("an expired key came back seen")
	}
}

// TestReplayCacheConcurrent: many goroutines check the same keys at once;
// each key is fresh exactly once (run with -race).
func TestReplayCacheConcurrent(t *testing.T) {
	rc := newReplayCache(1<<12, 600)
	const keys, goroutines = 2000, 8
	var fresh [keys]atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < keys; i++ {
				k := (i*7 + g*13) % keys
				now := int64(1000 + i/100)
				switch rc.check("k"+strconv.Itoa(k), 5000, now) {
				case replayFresh:
					fresh[k].Add(1)
				case replayFull:
					t.Error("full")
					return
				}
			}
			_ = rc.size()
		}()
	}
	wg.Wait()
	for k := range fresh {
		if n := fresh[k].Load(); n != 1 {
			t.Fatalf("key %d fresh %d times, want once", k, n)
		}
	}
}
