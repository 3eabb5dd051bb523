package bolt

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/credentials"
)

// The 1M-key store is built once per test binary run (only when a
// benchmark asks for it) and removed by TestMain.
var bench1M struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func cleanupBench() {
	if bench1M.dir != "" {
		os.RemoveAll(bench1M.dir)
	}
}

const benchClients = 100

func benchKey(i int, gen string) credentials.APIKey {
	return credentials.APIKey{
		ID:        fmt.Sprintf("ak_%07d", i),
		ClientID:  fmt.Sprintf("cl_%03d", i%benchClients),
		Name:      "bench key",
		KeySHA256: digest(gen + "-bench-" + strconv.Itoa(i)),
	}
}

func benchBase() *credentials.Changes {
	ch := &credentials.Changes{Tenants: []credentials.Tenant{tenant("bench")}}
	for i := range benchClients {
		ch.Clients = append(ch.Clients, client(fmt.Sprintf("cl_%03d", i), "bench"))
	}
	return ch
}

// store1M returns the path of a store holding 1,000,000 API keys, written
// in batches of 100,000.
func store1M(b *testing.B) string {
	bench1M.once.Do(func() {
		// KEYGATE_BENCH_1M names a 1M-key store to reuse (kept afterwards).
		if p := os.Getenv("KEYGATE_BENCH_1M"); p != "" {
			if _, err := os.Stat(p); err == nil {
				bench1M.path = p
				return
			}
			bench1M.path = p
		}
		if bench1M.path == "" {
			bench1M.dir, bench1M.err = os.MkdirTemp("", "keygate-bench-")
			bench1M.path = filepath.Join(bench1M.dir, "keygate.db")
		}
		if bench1M.err != nil {
			return
		}
		s, err := Open(bench1M.path, Options{FlushInterval: -1})
		if err != nil {
			bench1M.err = err
			return
		}
		defer s.Close()
		start := time.Now()
		if _, err := s.Apply(ctx, benchBase(), credentials.ApplyOptions{}); err != nil {
			bench1M.err = err
			return
		}
		const batch = 100_000
		for n := 0; n < 1_000_000; n += batch {
			ch := &credentials.Changes{APIKeys: make([]credentials.APIKey, batch)}
			for i := range batch {
				ch.APIKeys[i] = benchKey(n+i, "g0")
			}
			t := time.Now()
			if _, err := s.Apply(ctx, ch, credentials.ApplyOptions{}); err != nil {
				bench1M.err = err
				return
			}
			b.Logf("applied keys %d-%d in %s", n, n+batch, time.Since(t).Round(time.Millisecond))
		}
		fi, _ := os.Stat(bench1M.path)
		b.Logf("built a 1M-key store (%d MiB) in %s", fi.Size()>>20, time.Since(start).Round(time.Millisecond))
	})
	if bench1M.err != nil {
		b.Fatal(bench1M.err)
	}
	return bench1M.path
}

// rssMiB returns the resident set size of this process after a GC that
// returns freed memory to the OS.
func rssMiB() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkOpen1M measures Open (load, decode, index) of a 1M-key store
// and the resident memory of the loaded store.
func BenchmarkOpen1M(b *testing.B) {
	path := store1M(b)
	base := rssMiB()
	var total time.Duration
	var s *Store
	b.ResetTimer()
	for b.Loop() {
		if s != nil {
			s.Close()
		}
		t := time.Now()
		var err error
		if s, err = Open(path, Options{FlushInterval: -1}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t)
	}
	b.StopTimer()
	if st, _ := s.Status(ctx); st.Counts.APIKeys != 1_000_000 {
		b.Fatalf("loaded %d keys", st.Counts.APIKeys)
	}
	rss := rssMiB()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(total.Seconds()/float64(b.N), "s-open")
	b.ReportMetric(rss, "MiB-rss")
	b.ReportMetric(rss-base, "MiB-rss-store")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "MiB-heap")
	runtime.KeepAlive(s)
	s.Close()
}

// BenchmarkApplyOneKey1M measures Apply of one changed API key in a
// 1M-key store (commit, fsync, copy-on-write and index rebuild).
func BenchmarkApplyOneKey1M(b *testing.B) {
	path := store1M(b)
	s, err := Open(path, Options{FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var total time.Duration
	n := 0
	b.ResetTimer()
	for b.Loop() {
		n++
		k := benchKey(0, "one-"+strconv.Itoa(n))
		t := time.Now()
		if _, err := s.Apply(ctx, &credentials.Changes{APIKeys: []credentials.APIKey{k}}, credentials.ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(n), "ms-apply")
}

// BenchmarkApplySnapshot100k measures a full snapshot (Replace) of
// 100,000 keys in which every key's digest changes.
func BenchmarkApplySnapshot100k(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "keygate.db"), Options{FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	snap := func(gen int) *credentials.Changes {
		ch := benchBase()
		ch.Replace = true
		ch.APIKeys = make([]credentials.APIKey, 100_000)
		for i := range ch.APIKeys {
			ch.APIKeys[i] = benchKey(i, "s"+strconv.Itoa(gen))
		}
		return ch
	}
	if _, err := s.Apply(ctx, snap(0), credentials.ApplyOptions{}); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	gen := 0
	b.ResetTimer()
	for b.Loop() {
		gen++
		ch := snap(gen)
		t := time.Now()
		if _, err := s.Apply(ctx, ch, credentials.ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t)
	}
	b.ReportMetric(total.Seconds()/float64(gen), "s-apply")
}
