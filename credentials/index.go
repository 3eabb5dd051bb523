package credentials

import (
	"hash/maphash"
	"math"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// Counts are the numbers of active credentials and records in an Index.
type Counts struct {
	Tenants  int `json:"tenants"`
	Clients  int `json:"clients"`
	APIKeys  int `json:"apikeys"`
	HMACKeys int `json:"hmackeys"`
	Issuers  int `json:"issuers"`
}

// Identity is what an allowed request tells the upstream. Its strings are
// computed once per index build, so an allow copies nothing.
type Identity struct {
	TenantID string
	Subject  string
	ClientID string
	KeyID    string
	Method   string
	Scopes   string // space-separated
}

// ClientEntry is a client as Check sees it.
type ClientEntry struct {
	ID       string
	TenantID string
	// Active is false when the client or its tenant is disabled.
	Active bool
	Roles  []string
	Scopes []string
	Nets   []netip.Prefix // empty: any source
	Limit  RateLimit
}

// KeyEntry is an API key as Check sees it.
type KeyEntry struct {
	Identity Identity
	Client   *ClientEntry
	Scopes   []string // the key's own (narrower) scopes; empty: the client's
	Expires  int64    // Unix nanoseconds; 0: never
	Disabled bool
	Usage    *Usage
}

// Usage is the approximate last use of a key, updated without locks by
// Check and flushed to storage in batches. It survives index rebuilds.
type Usage struct {
	last    atomic.Int64 // Unix seconds
	ip      atomic.Pointer[netip.Addr]
	flushed atomic.Int64
}

// Record notes a use at now from ip. It allocates at most once per second.
func (u *Usage) Record(now time.Time, ip netip.Addr) {
	s := now.Unix()
	if u.last.Load() == s {
		return
	}
	u.last.Store(s)
	if ip.IsValid() {
		p := new(netip.Addr) // not &ip: that moved ip to the heap on every call
		*p = ip
		u.ip.Store(p)
	}
}

// Pending returns the last use not yet flushed.
func (u *Usage) Pending() (last time.Time, ip netip.Addr, ok bool) {
	s := u.last.Load()
	if s == 0 || s == u.flushed.Load() {
		return time.Time{}, netip.Addr{}, false
	}
	if p := u.ip.Load(); p != nil {
		ip = *p
	}
	return time.Unix(s, 0).UTC(), ip, true
}

// MarkFlushed records that the use at last is on disk.
func (u *Usage) MarkFlushed(last time.Time) { u.flushed.Store(last.Unix()) }

// Index is the immutable read view of one store revision. It is built by
// BuildIndex after each commit and published atomically; readers never
// lock and never see a mix of revisions.
type Index struct {
	Revision uint64
	Counts   Counts

	// The key table is open addressing with linear probing (seeded
	// maphash, so imported digests cannot be chosen to collide) over
	// slots that hold the digest itself: a lookup reads one or two
	// adjacent cache lines of a pointer-free table (which the GC never
	// scans) and then only the entry it returns, from one contiguous
	// slice. A map[[32]byte]*KeyEntry of separately allocated entries
	// read a control word, a slot and a scattered entry; see
	// BenchmarkLookup* and BenchmarkMapLookup* for the difference.
	slots   []slot // len is a power of two, at most 3/4 full
	seed    maphash.Seed
	nkeys   int
	entries []KeyEntry
	usage   map[string]*Usage
}

// slot is one cell of the key table: an entry's digest and its position
// in entries plus one (0: empty).
type slot struct {
	sum [32]byte
	ref uint32
}

// IndexData is what BuildIndex needs from storage.
type IndexData struct {
	Revision uint64
	Tenants  []Tenant
	Clients  []Client
	APIKeys  []APIKey
}

// BuildIndex builds the index of d. Usage counters of keys also in prev
// (which may be nil) carry over, so no recorded use is lost.
func BuildIndex(d IndexData, prev *Index) *Index {
	idx := &Index{
		Revision: d.Revision,
		seed:     maphash.MakeSeed(),
		entries:  make([]KeyEntry, 0, len(d.APIKeys)),
		usage:    make(map[string]*Usage, len(d.APIKeys)),
	}
	size := 8
	for size < len(d.APIKeys)/3*4+4 {
		size <<= 1
	}
	idx.slots = make([]slot, size)
	now := time.Now().UnixNano()
	joined := make(map[*ClientEntry]string, len(d.Clients))
	tenants := make(map[string]*Tenant, len(d.Tenants))
	for i := range d.Tenants {
		tenants[d.Tenants[i].Slug] = &d.Tenants[i]
	}
	idx.Counts.Tenants = len(d.Tenants)
	clients := make(map[string]*ClientEntry, len(d.Clients))
	for i := range d.Clients {
		c := &d.Clients[i]
		t := tenants[c.Tenant]
		ce := &ClientEntry{
			ID:       c.ID,
			TenantID: c.Tenant,
			Active:   !c.Disabled && t != nil && !t.Disabled,
			Roles:    c.Roles,
			Scopes:   c.Scopes,
		}
		for _, s := range c.AllowedCIDRs {
			if p, err := ParseCIDR(s); err == nil {
				ce.Nets = append(ce.Nets, p)
			} else {
				ce.Active = false // fail closed on a record that slipped past validation
			}
		}
		if c.RateLimit != "" {
			l, err := ParseRateLimit(c.RateLimit)
			if err != nil {
				ce.Active = false
			}
			ce.Limit = l
		}
		clients[c.ID] = ce
		if ce.Active {
			idx.Counts.Clients++
		}
	}
	for i := range d.APIKeys {
		k := &d.APIKeys[i]
		ce := clients[k.ClientID]
		if ce == nil {
			continue
		}
		idx.entries = append(idx.entries, KeyEntry{
			Client:   ce,
			Scopes:   k.Scopes,
			Disabled: k.Disabled,
			Identity: Identity{
				TenantID: ce.TenantID,
				Subject:  ce.ID,
				ClientID: ce.ID,
				KeyID:    k.ID,
				Method:   "apikey",
			},
		})
		e := &idx.entries[len(idx.entries)-1]
		if len(k.Scopes) == 0 {
			s, ok := joined[ce]
			if !ok {
				s = strings.Join(ce.Scopes, " ")
				joined[ce] = s
			}
			e.Identity.Scopes = s
		} else {
			e.Identity.Scopes = strings.Join(effectiveScopes(ce.Scopes, k.Scopes), " ")
		}
		if k.ExpiresAt != nil {
			e.Expires = expiresNano(*k.ExpiresAt)
		}
		if prev != nil {
			e.Usage = prev.usage[k.ID]
		}
		if e.Usage == nil {
			e.Usage = new(Usage)
			if k.LastUsedAt != nil {
				e.Usage.last.Store(k.LastUsedAt.Unix())
				e.Usage.flushed.Store(k.LastUsedAt.Unix())
				if a, err := netip.ParseAddr(k.LastUsedIP); err == nil {
					e.Usage.ip.Store(&a)
				}
			}
		}
		idx.usage[k.ID] = e.Usage
		idx.insert(k.Sum(), uint32(len(idx.entries)))
		if !e.Disabled && ce.Active && (e.Expires == 0 || e.Expires > now) {
			idx.Counts.APIKeys++
		}
	}
	return idx
}

// effectiveScopes returns the scopes a key may use: its own scopes that
// the client grants, or the client's when the key has none.
func effectiveScopes(client, key []string) []string {
	if len(key) == 0 {
		return client
	}
	var out []string
	for _, s := range key {
		if ScopeGranted(client, s) {
			out = append(out, s)
		}
	}
	return out
}

// expiresNano returns t as KeyEntry.Expires: Unix nanoseconds, clamped to
// what an int64 holds (UnixNano is undefined outside 1678-2262, and an
// expires_at of year 1 came out in the future) and never 0 (which means
// "never expires": an expires_at of 1970-01-01T00:00:00Z never expired).
func expiresNano(t time.Time) int64 {
	switch s := t.Unix(); {
	case s <= math.MinInt64/1_000_000_000+1:
		return 1
	case s >= math.MaxInt64/1_000_000_000-1:
		return math.MaxInt64
	}
	if n := t.UnixNano(); n > 0 {
		return n
	}
	return 1 // before 1970: long expired
}

// insert puts the digest of entries[ref-1] in the table; a digest already
// there is replaced (the later key wins).
func (x *Index) insert(sum [32]byte, ref uint32) {
	mask := uint64(len(x.slots) - 1)
	for i := maphash.Bytes(x.seed, sum[:]) & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.ref == 0 {
			s.sum, s.ref = sum, ref
			x.nkeys++
			return
		}
		if s.sum == sum {
			s.ref = ref
			return
		}
	}
}

// Key returns the entry of the key whose SHA-256 digest is sum, or nil.
func (x *Index) Key(sum *[32]byte) *KeyEntry {
	if len(x.slots) == 0 {
		return nil
	}
	mask := uint64(len(x.slots) - 1)
	for i := maphash.Bytes(x.seed, sum[:]) & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.ref == 0 {
			return nil
		}
		if s.sum == *sum {
			return &x.entries[s.ref-1]
		}
	}
}

// EachUsage calls f with the ID and usage of every key.
func (x *Index) EachUsage(f func(id string, u *Usage)) {
	for id, u := range x.usage {
		f(id, u)
	}
}

// Len returns the number of API keys in the index (active or not).
func (x *Index) Len() int { return x.nkeys }
