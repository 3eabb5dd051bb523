package credentials

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// lookupFixture is an index of n generated keys plus the keys themselves,
// laid out contiguously in an order unrelated to the index's, so that
// walking the keys sequentially costs no cache misses of its own while
// every lookup lands on a random part of the index.
type lookupFixture struct {
	data IndexData
	idx  *Index
	keys []string

	oldMap map[[32]byte]*KeyEntry // for BenchmarkMapLookup*
}

var (
	fixtureMu sync.Mutex
	fixtures  = map[int]*lookupFixture{}
)

// fakeKey returns a well-formed generated key drawn from r (deterministic
// and much faster than crypto/rand for a million keys).
func fakeKey(r *rand.Rand) string {
	var b [GeneratedLen]byte
	copy(b[:], KeyPrefix)
	body := b[len(KeyPrefix) : len(KeyPrefix)+keyBodyLen]
	for i := range body {
		body[i] = base62Digits[r.IntN(62)]
	}
	putChecksum(b[len(KeyPrefix)+keyBodyLen:], body)
	return string(b[:])
}

// benchData returns IndexData with one tenant, 100 clients and n keys, and
// the n keys in shuffled order.
func benchData(n int) (IndexData, []string) {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	d := IndexData{Revision: 1, Tenants: []Tenant{{Slug: "acme"}}}
	const nClients = 100
	for i := 0; i < nClients; i++ {
		d.Clients = append(d.Clients, Client{ID: "cl_" + strconv.Itoa(i), Tenant: "acme", Scopes: []string{"read:*"}})
	}
	keys := make([]string, n)
	d.APIKeys = make([]APIKey, n)
	for i := range d.APIKeys {
		k := fakeKey(r)
		keys[i] = k
		sum := HashKey(k)
		d.APIKeys[i] = APIKey{ID: "ak_" + strconv.Itoa(i), ClientID: "cl_" + strconv.Itoa(i%nClients), KeySHA256: hex.EncodeToString(sum[:])}
	}
	r.Shuffle(n, func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	// One contiguous arena, in lookup order.
	arena := make([]byte, 0, n*GeneratedLen)
	for _, k := range keys {
		arena = append(arena, k...)
	}
	all := string(arena)
	for i := range keys {
		keys[i] = all[i*GeneratedLen : (i+1)*GeneratedLen]
	}
	return d, keys
}

func lookupFixtureOf(b *testing.B, n int) *lookupFixture {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if f := fixtures[n]; f != nil {
		return f
	}
	b.Helper()
	d, keys := benchData(n)
	f := &lookupFixture{data: d, idx: BuildIndex(d, nil), keys: keys}
	fixtures[n] = f
	runtime.GC()
	return f
}

var sinkEntry *KeyEntry

// benchmarkLookup measures what a Check pays to find a key: the format
// check, the hash and the index lookup, each iteration for a different
// existing key.
//
// With deref it also reads the entry's fields that Check reads next, so
// the benchmark includes the entry's cache miss whatever the layout.
func benchmarkLookup(b *testing.B, n int, deref bool) {
	f := lookupFixtureOf(b, n)
	keys, idx := f.keys, f.idx
	b.ReportAllocs()
	b.ResetTimer()
	j := 0
	for i := 0; i < b.N; i++ {
		k := keys[j]
		if j++; j == len(keys) {
			j = 0
		}
		if CheckKeyFormat(k) != nil {
			b.Fatal("format")
		}
		sum := HashKey(k)
		e := idx.Key(&sum)
		if e == nil || deref && (e.Disabled || !e.Client.Active) {
			b.Fatal("not found")
		}
		sinkEntry = e
	}
}

// BenchmarkMapLookup* measure the layout Index had before (a
// map[[32]byte]*KeyEntry of separately allocated entries) on the same
// keys, for comparison under the same machine load.
func benchmarkMapLookup(b *testing.B, n int, deref bool) {
	f := lookupFixtureOf(b, n)
	fixtureMu.Lock()
	if f.oldMap == nil {
		f.oldMap = make(map[[32]byte]*KeyEntry, n)
		for i := range f.data.APIKeys {
			sum := f.data.APIKeys[i].Sum()
			e := new(KeyEntry)
			*e = *f.idx.Key(&sum)
			f.oldMap[sum] = e
		}
		runtime.GC()
	}
	fixtureMu.Unlock()
	keys, m := f.keys, f.oldMap
	b.ReportAllocs()
	b.ResetTimer()
	j := 0
	for i := 0; i < b.N; i++ {
		k := keys[j]
		if j++; j == len(keys) {
			j = 0
		}
		if CheckKeyFormat(k) != nil {
			b.Fatal("format")
		}
		sum := HashKey(k)
		e := m[sum]
		if e == nil || deref && (e.Disabled || !e.Client.Active) {
			b.Fatal("not found")
		}
		sinkEntry = e
	}
}

func BenchmarkMapLookup1k(b *testing.B)      { benchmarkMapLookup(b, 1_000, false) }
func BenchmarkMapLookup1M(b *testing.B)      { benchmarkMapLookup(b, 1_000_000, false) }
func BenchmarkMapLookupEntry1k(b *testing.B) { benchmarkMapLookup(b, 1_000, true) }
func BenchmarkMapLookupEntry1M(b *testing.B) { benchmarkMapLookup(b, 1_000_000, true) }

func BenchmarkLookup1k(b *testing.B)      { benchmarkLookup(b, 1_000, false) }
func BenchmarkLookup1M(b *testing.B)      { benchmarkLookup(b, 1_000_000, false) }
func BenchmarkLookupEntry1k(b *testing.B) { benchmarkLookup(b, 1_000, true) }
func BenchmarkLookupEntry1M(b *testing.B) { benchmarkLookup(b, 1_000_000, true) }

// BenchmarkBuildIndex1M reports the time to build an index of a million
// keys and, as heap-MiB, the heap it holds (HeapInuse after GC).
func BenchmarkBuildIndex1M(b *testing.B) {
	d, _ := benchData(1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.KeepAlive(BuildIndex(d, nil))
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	idx := BuildIndex(d, nil)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
	runtime.KeepAlive(idx)
	runtime.KeepAlive(d)
}

func BenchmarkHashKey(b *testing.B) {
	k := GenerateAPIKey()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s := HashKey(k)
		sinkSum = s
	}
}

var sinkSum [32]byte

type fixedSource struct{ idx *Index }

func (s fixedSource) Index() *Index { return s.idx }

// benchChecker returns a checker over an index of 1,000 keys with a rate
// limit too high to reach, and one key of it.
func benchChecker(b *testing.B) (*Checker, string) {
	d, keys := benchData(1_000)
	for i := range d.Clients {
		d.Clients[i].RateLimit = "1000000000/second"
		d.Clients[i].AllowedCIDRs = []string{"10.0.0.0/8"}
		d.Clients[i].Roles = []string{"reader"}
	}
	now := time.Unix(1_700_000_000, 0)
	return &Checker{Source: fixedSource{BuildIndex(d, nil)}, Now: func() time.Time { return now }}, keys[0]
}

func BenchmarkCheckAllow(b *testing.B) {
	c, key := benchChecker(b)
	r := &Request{
		Policy:    Policy{Methods: AllMethods, Scopes: "read:projects", Roles: "reader"},
		APIKey:    key,
		HasAPIKey: true,
		SourceIP:  netip.MustParseAddr("10.1.2.3"),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d, err := c.Check(ctx, r)
		if err != nil || !d.Allowed() {
			b.Fatal(d.Reason, err)
		}
	}
}

func BenchmarkCheckDeny(b *testing.B) {
	c, _ := benchChecker(b)
	unknown := GenerateAPIKey()
	cases := []struct {
		name string
		r    Request
	}{
		{"unknown", Request{Policy: DefaultPolicy, Authorization: "Bearer " + unknown, HasAuthorization: true}},
		{"malformed", Request{Policy: DefaultPolicy, APIKey: "kg_short", HasAPIKey: true}},
		{"none", Request{Policy: DefaultPolicy}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				d, err := c.Check(ctx, &tc.r)
				if err != nil || d.Allowed() {
					b.Fatal(d.Reason, err)
				}
			}
		})
	}
}

// BenchmarkIndexWith1M measures With of one changed key on an index of a
// million keys (the index an Apply of one key publishes).
func BenchmarkIndexWith1M(b *testing.B) {
	f := lookupFixtureOf(b, 1_000_000)
	idx, k := f.idx, f.data.APIKeys[0]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		nk := k
		nk.Disabled = i%2 == 0
		idx = idx.With(&IndexDelta{Revision: uint64(i + 2), APIKeys: []APIKey{nk}, Removed: []APIKey{k}})
	}
}

// BenchmarkIndexWithClient1M measures With of a changed client that has
// 10,000 of the million keys (every entry of the client is re-derived).
func BenchmarkIndexWithClient1M(b *testing.B) {
	f := lookupFixtureOf(b, 1_000_000)
	idx, c := f.idx, f.data.Clients[0]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		nc := c
		nc.Disabled = i%2 == 0
		idx = idx.With(&IndexDelta{Revision: uint64(i + 2), Clients: []Client{nc}})
	}
}
