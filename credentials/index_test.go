package credentials

import (
	"encoding/hex"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestBuildIndexCounts(t *testing.T) {
	w := newWorld(t)
	idx := w.src.idx
	if idx.Revision != 7 {
		t.Errorf("Revision = %d", idx.Revision)
	}
	// Every key of a known client is in the index, active or not.
	if got, want := idx.Len(), len(w.data.APIKeys)-1; got != want { // ak_nokeyclient has no client
		t.Errorf("Len() = %d, want %d", got, want)
	}
	// Active: all but disabled, year1, epoch, off, dead, orphan (and
	// nokeyclient, not indexed); expired and expiring expire after today.
	want := Counts{Tenants: 3, Clients: 7, APIKeys: 12}
	if idx.Counts != want {
		t.Errorf("Counts = %+v, want %+v", idx.Counts, want)
	}
	var zero Index
	sum := HashKey(w.keys["acme"])
	if zero.Key(&sum) != nil || zero.Len() != 0 {
		t.Error("zero Index finds keys")
	}
	zero.EachUsage(func(string, *Usage) { t.Error("zero Index has usage") })
}

func TestBuildIndexInvalidClient(t *testing.T) {
	// Records that slipped past validation fail closed.
	d := IndexData{
		Tenants: []Tenant{{Slug: "t"}},
		Clients: []Client{
			{ID: "cl_cidr", Tenant: "t", AllowedCIDRs: []string{"bogus"}},
			{ID: "cl_rate", Tenant: "t", RateLimit: "many"},
		},
		APIKeys: []APIKey{
			{ID: "ak_cidr", ClientID: "cl_cidr", KeySHA256: digestA},
			{ID: "ak_rate", ClientID: "cl_rate", KeySHA256: digestB},
		},
	}
	idx := BuildIndex(d, nil)
	for _, k := range d.APIKeys {
		sum := k.Sum()
		if e := idx.Key(&sum); e == nil || e.Client.Active {
			t.Errorf("%s: entry %v, want an inactive client", k.ID, e)
		}
	}
}

func TestBuildIndexLastUsed(t *testing.T) {
	used := t0.Add(-time.Hour)
	d := IndexData{
		Tenants: []Tenant{{Slug: "t"}},
		Clients: []Client{{ID: "cl_a", Tenant: "t"}},
		APIKeys: []APIKey{{ID: "ak_a", ClientID: "cl_a", KeySHA256: digestA, LastUsedAt: &used, LastUsedIP: "2001:db8::1"}},
	}
	idx := BuildIndex(d, nil)
	sum := d.APIKeys[0].Sum()
	u := idx.Key(&sum).Usage
	if _, _, ok := u.Pending(); ok {
		t.Error("a stored last use is pending")
	}
	u.Record(used, netip.Addr{}) // the same second: nothing new
	if _, _, ok := u.Pending(); ok {
		t.Error("a use in the stored second is pending")
	}
	u.Record(t0, netip.Addr{})
	last, ip, ok := u.Pending()
	if !ok || !last.Equal(t0) || ip != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("Pending() = %v %v %v", last, ip, ok)
	}
}

func TestBuildIndexDuplicateDigest(t *testing.T) {
	d := IndexData{
		Tenants: []Tenant{{Slug: "t"}},
		Clients: []Client{{ID: "cl_a", Tenant: "t"}},
		APIKeys: []APIKey{
			{ID: "ak_first", ClientID: "cl_a", KeySHA256: digestA},
			{ID: "ak_second", ClientID: "cl_a", KeySHA256: digestA},
		},
	}
	idx := BuildIndex(d, nil)
	sum := d.APIKeys[0].Sum()
	if e := idx.Key(&sum); e == nil || e.Identity.KeyID != "ak_second" || idx.Len() != 1 {
		t.Errorf("duplicate digest: %v, Len %d; want the later key, 1", e, idx.Len())
	}
}

func TestExpiresNano(t *testing.T) {
	tests := []struct {
		t    time.Time
		want int64
	}{
		{time.Time{}, 1},
		{time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), 1},
		{time.Date(1677, 9, 21, 0, 0, 0, 0, time.UTC), 1},
		{time.Unix(0, 0), 1},
		{time.Unix(0, 1), 1},
		{time.Unix(1_700_000_000, 5), 1_700_000_000_000_000_005},
		{time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC), math.MaxInt64},
		{time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), math.MaxInt64},
	}
	for _, tt := range tests {
		if got := expiresNano(tt.t); got != tt.want {
			t.Errorf("expiresNano(%v) = %d, want %d", tt.t, got, tt.want)
		}
	}
	// Monotonic over the whole range: a later expiry never expires sooner.
	prev := int64(0)
	for y := 1; y < 10000; y += 7 {
		n := expiresNano(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC))
		if n < prev {
			t.Fatalf("expiresNano(year %d) = %d < %d", y, n, prev)
		}
		prev = n
	}
}

// TestIndexTable checks the key table against a map over many keys,
// including digests that share their first 8 or 31 bytes.
func TestIndexTable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := IndexData{Tenants: []Tenant{{Slug: "t"}}, Clients: []Client{{ID: "cl_a", Tenant: "t"}}}
	want := map[[32]byte]string{}
	addSum := func(sum [32]byte) {
		id := "ak_" + strconv.Itoa(len(d.APIKeys))
		d.APIKeys = append(d.APIKeys, APIKey{ID: id, ClientID: "cl_a", KeySHA256: hex.EncodeToString(sum[:])})
		want[sum] = id
	}
	var base [32]byte
	for i := 0; i < 5000; i++ {
		var sum [32]byte
		for j := range sum {
			sum[j] = byte(r.Uint32())
		}
		switch i % 5 {
		case 1: // same first 8 bytes as the previous
			copy(sum[:8], base[:8])
		case 2: // same but the last byte
			sum = base
			sum[31] ^= byte(i>>3) | 1
		}
		if _, dup := want[sum]; dup {
			continue
		}
		base = sum
		addSum(sum)
	}
	for n := range []int{0, 1, 7, 8, 9, len(d.APIKeys)} {
		sub := d
		sub.APIKeys = d.APIKeys[:n]
		idx := BuildIndex(sub, nil)
		if idx.Len() != n {
			t.Fatalf("n=%d: Len() = %d", n, idx.Len())
		}
		if len(idx.base.slots)*3 < n*4 {
			t.Fatalf("n=%d: table of %d slots over 3/4 full", n, len(idx.base.slots))
		}
		for i, k := range sub.APIKeys {
			sum := k.Sum()
			if e := idx.Key(&sum); e == nil || e.Identity.KeyID != k.ID {
				t.Fatalf("n=%d: key %d not found (%v)", n, i, e)
			}
		}
	}
	idx := BuildIndex(d, nil)
	for sum, id := range want {
		if e := idx.Key(&sum); e == nil || e.Identity.KeyID != id {
			t.Fatalf("%x: got %v, want %s", sum, e, id)
		}
		missing := sum
		missing[16] ^= 0x80
		if _, ok := want[missing]; !ok && idx.Key(&missing) != nil {
			t.Fatalf("%x: found a key that is not there", missing)
		}
	}
}

func TestEffectiveScopes(t *testing.T) {
	cases := []struct {
		client, key, want []string
	}{
		{[]string{"read:*", "write:x"}, nil, []string{"read:*", "write:x"}},
		{[]string{"read:*", "write:x"}, []string{"read:projects"}, []string{"read:projects"}},
		{[]string{"read:projects", "read:users", "write:x"}, []string{"read:*"}, []string{"read:projects", "read:users"}},
		{[]string{"read:projects"}, []string{"write:x"}, nil},
		{[]string{"*"}, []string{"a", "b:*"}, []string{"a", "b:*"}},
		{[]string{"a", "b"}, []string{"*", "a"}, []string{"a", "b"}},
	}
	for _, c := range cases {
		if got := effectiveScopes(c.client, c.key); !slices.Equal(got, c.want) {
			t.Errorf("effectiveScopes(%v, %v) = %v, want %v", c.client, c.key, got, c.want)
		}
	}
}
