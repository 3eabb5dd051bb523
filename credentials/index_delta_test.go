package credentials

import (
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// model is the records an index is built from, kept by ID.
type model struct {
	rev     uint64
	tenants map[string]Tenant
	clients map[string]Client
	keys    map[string]APIKey
}

func (m *model) data() IndexData {
	d := IndexData{Revision: m.rev}
	for _, slug := range slices.Sorted(maps.Keys(m.tenants)) {
		d.Tenants = append(d.Tenants, m.tenants[slug])
	}
	for _, id := range slices.Sorted(maps.Keys(m.clients)) {
		d.Clients = append(d.Clients, m.clients[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.keys)) {
		d.APIKeys = append(d.APIKeys, m.keys[id])
	}
	return d
}

// apply changes m by d as a store does (a removed client takes its keys).
func (m *model) apply(d *IndexDelta) {
	m.rev = d.Revision
	for _, slug := range d.DeleteTenants {
		delete(m.tenants, slug)
	}
	for _, t := range d.Tenants {
		m.tenants[t.Slug] = t
	}
	for _, id := range d.DeleteClients {
		delete(m.clients, id)
	}
	for _, c := range d.Clients {
		m.clients[c.ID] = c
	}
	for _, k := range d.Removed {
		delete(m.keys, k.ID)
	}
	for _, k := range d.APIKeys {
		m.keys[k.ID] = k
	}
}

func sumHex(i int) string {
	var sum [32]byte
	copy(sum[:], fmt.Sprintf("digest-%d", i))
	return hex.EncodeToString(sum[:])
}

// sameIndex fails t unless got answers exactly like want for every digest
// in sums.
func sameIndex(t *testing.T, step string, got, want *Index, sums []string) {
	t.Helper()
	if got.Revision != want.Revision || got.Len() != want.Len() || got.Counts != want.Counts {
		t.Fatalf("%s: revision %d, len %d, counts %+v; want %d, %d, %+v", step,
			got.Revision, got.Len(), got.Counts, want.Revision, want.Len(), want.Counts)
	}
	for _, h := range sums {
		var sum [32]byte
		hex.Decode(sum[:], []byte(h))
		g, w := got.Key(&sum), want.Key(&sum)
		if (g == nil) != (w == nil) {
			t.Fatalf("%s: key %s: got %v, want %v", step, h[:12], g, w)
		}
		if g == nil {
			continue
		}
		ge, we := *g, *w
		ge.Usage, we.Usage = nil, nil
		gc, wc := *ge.Client, *we.Client
		ge.Client, we.Client = nil, nil
		if !reflect.DeepEqual(ge, we) || !reflect.DeepEqual(gc, wc) {
			t.Fatalf("%s: key %s:\n got %+v %+v\nwant %+v %+v", step, h[:12], ge, gc, we, wc)
		}
	}
	ids := map[string]*Usage{}
	got.EachUsage(func(id string, u *Usage) {
		if ids[id] != nil {
			t.Fatalf("%s: EachUsage gives %s twice", step, id)
		}
		ids[id] = u
	})
	n := 0
	want.EachUsage(func(id string, _ *Usage) {
		n++
		if ids[id] == nil {
			t.Fatalf("%s: EachUsage misses %s", step, id)
		}
	})
	if n != len(ids) {
		t.Fatalf("%s: EachUsage gives %d keys, want %d", step, len(ids), n)
	}
}

func TestIndexWith(t *testing.T) {
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	future := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	base := IndexData{
		Revision: 1,
		Tenants:  []Tenant{{Slug: "t1"}, {Slug: "t2"}},
		Clients: []Client{
			{ID: "cl_a", Tenant: "t1", Scopes: []string{"read:*", "write:x"}},
			{ID: "cl_b", Tenant: "t2", Roles: []string{"admin"}},
		},
		APIKeys: []APIKey{
			{ID: "ak_1", ClientID: "cl_a", KeySHA256: sumHex(1)},
			{ID: "ak_2", ClientID: "cl_a", KeySHA256: sumHex(2), Scopes: []string{"read:y"}},
			{ID: "ak_3", ClientID: "cl_b", KeySHA256: sumHex(3), ExpiresAt: &future},
		},
	}
	k := func(id, client string, sum int) APIKey {
		return APIKey{ID: id, ClientID: client, KeySHA256: sumHex(sum)}
	}
	tests := []struct {
		name string
		d    IndexDelta
	}{
		{"nothing", IndexDelta{}},
		{"add key", IndexDelta{APIKeys: []APIKey{k("ak_4", "cl_b", 4)}}},
		{"disable key", IndexDelta{APIKeys: []APIKey{{ID: "ak_1", ClientID: "cl_a", KeySHA256: sumHex(1), Disabled: true}}, Removed: []APIKey{k("ak_1", "cl_a", 1)}}},
		{"expire key", IndexDelta{APIKeys: []APIKey{{ID: "ak_3", ClientID: "cl_b", KeySHA256: sumHex(3), ExpiresAt: &past}}, Removed: []APIKey{k("ak_3", "cl_b", 3)}}},
		{"rotate key", IndexDelta{APIKeys: []APIKey{k("ak_1", "cl_a", 9)}, Removed: []APIKey{k("ak_1", "cl_a", 1)}}},
		{"swap digests", IndexDelta{APIKeys: []APIKey{k("ak_1", "cl_a", 2), {ID: "ak_2", ClientID: "cl_a", KeySHA256: sumHex(1), Scopes: []string{"read:y"}}},
			Removed: []APIKey{k("ak_1", "cl_a", 1), k("ak_2", "cl_a", 2)}}},
		{"move key", IndexDelta{APIKeys: []APIKey{k("ak_1", "cl_b", 1)}, Removed: []APIKey{k("ak_1", "cl_a", 1)}}},
		{"delete key", IndexDelta{Removed: []APIKey{k("ak_2", "cl_a", 2)}}},
		{"disable client", IndexDelta{Clients: []Client{{ID: "cl_a", Tenant: "t1", Disabled: true, Scopes: []string{"read:*"}}}}},
		{"client scopes", IndexDelta{Clients: []Client{{ID: "cl_a", Tenant: "t1", Scopes: []string{"read:y"}}}}},
		{"client tenant", IndexDelta{Clients: []Client{{ID: "cl_a", Tenant: "t2", Scopes: []string{"read:*", "write:x"}}}}},
		{"client bad cidr", IndexDelta{Clients: []Client{{ID: "cl_b", Tenant: "t2", AllowedCIDRs: []string{"bogus"}}}}},
		{"delete client", IndexDelta{DeleteClients: []string{"cl_a"}, Removed: []APIKey{k("ak_1", "cl_a", 1), {ID: "ak_2", ClientID: "cl_a", KeySHA256: sumHex(2), Scopes: []string{"read:y"}}}}},
		{"disable tenant", IndexDelta{Tenants: []Tenant{{Slug: "t1", Disabled: true}}}},
		{"delete tenant", IndexDelta{DeleteTenants: []string{"t2"}}},
		{"new tenant and client", IndexDelta{Tenants: []Tenant{{Slug: "t3"}}, Clients: []Client{{ID: "cl_c", Tenant: "t3"}}, APIKeys: []APIKey{k("ak_5", "cl_c", 5)}}},
		{"key of a missing client", IndexDelta{APIKeys: []APIKey{k("ak_6", "cl_zz", 6)}}},
	}
	sums := []string{sumHex(1), sumHex(2), sumHex(3), sumHex(4), sumHex(5), sumHex(6), sumHex(9)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &model{tenants: map[string]Tenant{}, clients: map[string]Client{}, keys: map[string]APIKey{}}
			m.apply(&IndexDelta{Revision: 1, Tenants: base.Tenants, Clients: base.Clients, APIKeys: base.APIKeys})
			prev := BuildIndex(base, nil)
			d := tt.d
			d.Revision = 2
			got := prev.With(&d)
			m.apply(&d)
			sameIndex(t, tt.name, got, BuildIndex(m.data(), nil), sums)
			sameIndex(t, tt.name+" (previous)", prev, BuildIndex(base, nil), sums)
			// Usage carries over for keys that stay.
			for _, k := range base.APIKeys {
				sum := k.Sum()
				if e, p := got.Key(&sum), prev.Key(&sum); e != nil && e.Identity.KeyID == k.ID && e.Usage != p.Usage {
					t.Errorf("%s: usage of %s did not carry over", tt.name, k.ID)
				}
			}
			if k := m.keys["ak_1"]; k.ID != "" {
				sum := k.Sum()
				old := base.APIKeys[0].Sum()
				if e := got.Key(&sum); e != nil && e.Usage != prev.Key(&old).Usage {
					t.Errorf("%s: usage of ak_1 did not follow its record", tt.name)
				}
			}
		})
	}
}

// TestIndexWithRandom applies many random deltas and compares each index
// with BuildIndex of the same records, while readers look keys up in the
// published index (run it under -race).
func TestIndexWithRandom(t *testing.T) {
	for _, small := range []bool{false, true} {
		t.Run(fmt.Sprintf("compact-often=%v", small), func(t *testing.T) {
			if small {
				defer func(n int) { minCompact = n }(minCompact)
				minCompact = 8
			}
			testIndexWithRandom(t, 400)
		})
	}
}

func testIndexWithRandom(t *testing.T, steps int) {
	r := rand.New(rand.NewPCG(7, uint64(minCompact)))
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	future := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &model{tenants: map[string]Tenant{}, clients: map[string]Client{}, keys: map[string]APIKey{}}
	const nSums = 300
	var sums []string
	for i := range nSums {
		sums = append(sums, sumHex(i))
	}
	scopes := [][]string{nil, {"read:*"}, {"read:x", "write:*"}, {"admin"}}
	// An initial state of a few hundred keys.
	init := &IndexDelta{Revision: 1}
	for i := range 3 {
		init.Tenants = append(init.Tenants, Tenant{Slug: fmt.Sprintf("t%d", i)})
	}
	for i := range 6 {
		init.Clients = append(init.Clients, Client{ID: fmt.Sprintf("cl_%d", i), Tenant: fmt.Sprintf("t%d", i%3), Scopes: scopes[i%4]})
	}
	for i := range 150 {
		init.APIKeys = append(init.APIKeys, APIKey{ID: fmt.Sprintf("ak_%d", i), ClientID: fmt.Sprintf("cl_%d", i%6), KeySHA256: sums[i]})
	}
	m.apply(init)
	var cur atomic.Pointer[Index]
	cur.Store(BuildIndex(m.data(), nil))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				idx := cur.Load()
				var sum [32]byte
				hex.Decode(sum[:], []byte(sums[i%nSums]))
				if e := idx.Key(&sum); e != nil {
					e.Usage.Record(time.Unix(int64(i), 0), netip.Addr{})
				}
				if i%50 == 0 {
					idx.EachUsage(func(string, *Usage) {})
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	usedSums := func() map[string]string { // digest → key ID
		u := map[string]string{}
		for id, k := range m.keys {
			u[k.KeySHA256] = id
		}
		return u
	}
	for step := range steps {
		d := &IndexDelta{Revision: m.rev + 1}
		used := usedSums()
		freeSum := func() string {
			for {
				if s := sums[r.IntN(nSums)]; used[s] == "" {
					used[s] = "taken"
					return s
				}
			}
		}
		anyKey := func() (APIKey, bool) {
			if len(m.keys) == 0 {
				return APIKey{}, false
			}
			ids := slices.Sorted(maps.Keys(m.keys))
			return m.keys[ids[r.IntN(len(ids))]], true
		}
		touched := map[string]bool{}
		for range 1 + r.IntN(6) {
			switch op := r.IntN(20); {
			case op < 2: // tenant
				slug := fmt.Sprintf("t%d", r.IntN(4))
				if r.IntN(4) == 0 && m.tenants[slug].Slug != "" && !slices.Contains(d.DeleteTenants, slug) {
					if !slices.ContainsFunc(d.Tenants, func(t Tenant) bool { return t.Slug == slug }) {
						d.DeleteTenants = append(d.DeleteTenants, slug)
					}
				} else if !slices.Contains(d.DeleteTenants, slug) && !slices.ContainsFunc(d.Tenants, func(t Tenant) bool { return t.Slug == slug }) {
					d.Tenants = append(d.Tenants, Tenant{Slug: slug, Disabled: r.IntN(3) == 0})
				}
			case op < 5: // client
				id := fmt.Sprintf("cl_%d", r.IntN(8))
				if touched[id] {
					continue
				}
				touched[id] = true
				if r.IntN(5) == 0 && m.clients[id].ID != "" {
					d.DeleteClients = append(d.DeleteClients, id)
					for _, kid := range slices.Sorted(maps.Keys(m.keys)) {
						if k := m.keys[kid]; k.ClientID == id && !touched[kid] {
							touched[kid] = true
							d.Removed = append(d.Removed, k)
						}
					}
					continue
				}
				c := Client{ID: id, Tenant: fmt.Sprintf("t%d", r.IntN(4)), Scopes: scopes[r.IntN(4)], Disabled: r.IntN(4) == 0}
				switch r.IntN(6) {
				case 0:
					c.AllowedCIDRs = []string{"10.0.0.0/8"}
				case 1:
					c.RateLimit = "10/second"
				case 2:
					c.RateLimit = "bogus"
				}
				d.Clients = append(d.Clients, c)
			default: // key
				k, ok := anyKey()
				if !ok || r.IntN(3) == 0 {
					k = APIKey{ID: fmt.Sprintf("ak_%d", 150+step*10+r.IntN(10))}
					if m.keys[k.ID].ID != "" {
						continue
					}
				}
				if touched[k.ID] {
					continue
				}
				touched[k.ID] = true
				old, existed := m.keys[k.ID]
				if existed {
					d.Removed = append(d.Removed, old)
				}
				if existed && r.IntN(4) == 0 {
					continue // deleted
				}
				var live []string // a store keeps no key of a missing client
				for id := range m.clients {
					if !slices.Contains(d.DeleteClients, id) {
						live = append(live, id)
					}
				}
				for _, c := range d.Clients {
					live = append(live, c.ID)
				}
				if len(live) == 0 {
					continue
				}
				slices.Sort(live)
				k.ClientID = live[r.IntN(len(live))]
				if !existed || r.IntN(3) == 0 {
					k.KeySHA256 = freeSum()
				}
				k.Scopes = scopes[r.IntN(4)]
				k.Disabled = r.IntN(5) == 0
				switch r.IntN(5) {
				case 0:
					k.ExpiresAt = &past
				case 1:
					k.ExpiresAt = &future
				default:
					k.ExpiresAt = nil
				}
				d.APIKeys = append(d.APIKeys, k)
			}
		}
		// A store never keeps keys of a removed client: drop upserts of
		// keys to clients removed in this delta.
		d.APIKeys = slices.DeleteFunc(d.APIKeys, func(k APIKey) bool { return slices.Contains(d.DeleteClients, k.ClientID) })
		prev := cur.Load()
		next := prev.With(d)
		m.apply(d)
		sameIndex(t, fmt.Sprintf("step %d", step), next, BuildIndex(m.data(), nil), sums)
		// Usage carries over: every key whose ID stays keeps its counter.
		byID := map[string]*Usage{}
		prev.EachUsage(func(id string, u *Usage) { byID[id] = u })
		next.EachUsage(func(id string, u *Usage) {
			if p := byID[id]; p != nil && p != u {
				t.Fatalf("step %d: usage of %s did not carry over", step, id)
			}
		})
		cur.Store(next)
	}
}
