package credentials

import (
	"hash/maphash"
	"math"
	"net/netip"
	"runtime"
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

// activeAt reports whether e allows requests at t (Unix nanoseconds).
func (e *KeyEntry) activeAt(t int64) bool {
	return !e.Disabled && e.Client.Active && (e.Expires == 0 || e.Expires > t)
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

// newUsage returns the usage of a key first seen in k's record.
func newUsage(k *APIKey) *Usage {
	u := new(Usage)
	if k.LastUsedAt != nil {
		u.last.Store(k.LastUsedAt.Unix())
		u.flushed.Store(k.LastUsedAt.Unix())
		if a, err := netip.ParseAddr(k.LastUsedIP); err == nil {
			u.ip.Store(&a)
		}
	}
	return u
}

// Index is the immutable read view of one store revision. It is built by
// BuildIndex (on load and for whole snapshots) or derived from the
// previous revision's index by With, and published atomically; readers
// never lock and never see a mix of revisions.
//
// An Index is a base key table shared by the indexes derived from it
// plus a small overlay of the keys changed since the base was built
// (see With); the overlay is folded into a new base when it grows.
type Index struct {
	Revision uint64
	Counts   Counts

	base    *keyTable
	over    overlay
	nkeys   int
	tenants map[string]bool // slug → disabled
	clients map[string]*clientInfo
}

// clientInfo is a client record and the ClientEntry Check sees for it.
type clientInfo struct {
	rec    Client
	entry  *ClientEntry
	joined string // entry.Scopes joined by spaces (the Identity.Scopes of its keys that have none)
}

// keyTable is an immutable table of keys, shared by every Index derived
// from the one it was built for.
//
// The table is open addressing with linear probing (seeded maphash, so
// imported digests cannot be chosen to collide) over slots that hold the
// digest itself: a lookup reads one or two adjacent cache lines of a
// pointer-free table (which the GC never scans) and then only the entry
// it returns, from one contiguous slice. A map[[32]byte]*KeyEntry of
// separately allocated entries read a control word, a slot and a
// scattered entry; see BenchmarkLookup* and BenchmarkMapLookup* for the
// difference. Large tables live outside the Go heap, in memory backed by
// transparent huge pages where the OS has them (see allocSlots): a random
// lookup in a 75 MB table otherwise pays a page-table walk as well as a
// cache miss.
type keyTable struct {
	slots    []slot // len is a power of two, at most 3/4 full
	seed     maphash.Seed
	n        int
	entries  []KeyEntry
	byClient map[string][]uint32 // client ID → positions in slots of its keys
	builtAt  int64               // Unix nanoseconds at which activity was counted
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
		tenants:  make(map[string]bool, len(d.Tenants)),
		clients:  make(map[string]*clientInfo, len(d.Clients)),
	}
	for i := range d.Tenants {
		idx.tenants[d.Tenants[i].Slug] = d.Tenants[i].Disabled
	}
	for i := range d.Clients {
		idx.clients[d.Clients[i].ID] = idx.newClientInfo(&d.Clients[i])
	}
	now := time.Now().UnixNano()
	kt := newKeyTable(len(d.APIKeys), now)
	var prevUsage map[string]*Usage // built on the first key prev has under another digest
	for i := range d.APIKeys {
		k := &d.APIKeys[i]
		ci := idx.clients[k.ClientID]
		if ci == nil {
			continue
		}
		sum := k.Sum()
		var u *Usage
		if prev != nil {
			if e := prev.Key(&sum); e != nil && e.Identity.KeyID == k.ID {
				u = e.Usage
			} else {
				if prevUsage == nil {
					prevUsage = make(map[string]*Usage, prev.Len())
					prev.EachUsage(func(id string, u *Usage) { prevUsage[id] = u })
				}
				u = prevUsage[k.ID]
			}
		}
		if u == nil {
			u = newUsage(k)
		}
		kt.entries = append(kt.entries, KeyEntry{})
		e := &kt.entries[len(kt.entries)-1]
		ci.fill(e, k)
		e.Usage = u
		kt.insert(sum, uint32(len(kt.entries)))
	}
	kt.index()
	idx.base = kt
	idx.nkeys = kt.n
	idx.count()
	return idx
}

// newClientInfo returns the entry of client c under the tenants of x.
func (x *Index) newClientInfo(c *Client) *clientInfo {
	disabled, ok := x.tenants[c.Tenant]
	ce := &ClientEntry{
		ID:       c.ID,
		TenantID: c.Tenant,
		Active:   !c.Disabled && ok && !disabled,
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
	return &clientInfo{rec: *c, entry: ce, joined: strings.Join(ce.Scopes, " ")}
}

// fill sets the fields of e that come from key k of client ci (all but
// Usage).
func (ci *clientInfo) fill(e *KeyEntry, k *APIKey) {
	*e = KeyEntry{Scopes: k.Scopes, Disabled: k.Disabled, Identity: Identity{KeyID: k.ID}}
	if k.ExpiresAt != nil {
		e.Expires = expiresNano(*k.ExpiresAt)
	}
	ci.attach(e)
}

// attach points e, an entry of one of ci's keys, at ci.
func (ci *clientInfo) attach(e *KeyEntry) {
	ce := ci.entry
	e.Client = ce
	e.Identity = Identity{
		TenantID: ce.TenantID,
		Subject:  ce.ID,
		ClientID: ce.ID,
		KeyID:    e.Identity.KeyID,
		Method:   "apikey",
		Scopes:   ci.joined,
	}
	if len(e.Scopes) > 0 {
		e.Identity.Scopes = strings.Join(effectiveScopes(ce.Scopes, e.Scopes), " ")
	}
}

// count sets Counts from the tenants, clients and keys of x. Keys are
// counted when the base table was built and when they changed since.
func (x *Index) count() {
	x.Counts = Counts{Tenants: len(x.tenants)}
	for _, ci := range x.clients {
		if ci.entry.Active {
			x.Counts.Clients++
		}
	}
	x.Counts.APIKeys = 0
	x.base.each(func(sum *[32]byte, e *KeyEntry) {
		if x.over.find(x.base.hash(sum), sum) == nil && e.activeAt(x.base.builtAt) {
			x.Counts.APIKeys++
		}
	})
	for i := range x.over.cells {
		if c := &x.over.cells[i]; c.used && c.active {
			x.Counts.APIKeys++
		}
	}
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

// newKeyTable returns an empty table for n keys.
func newKeyTable(n int, now int64) *keyTable {
	size := 8
	for size < n/3*4+4 {
		size <<= 1
	}
	kt := &keyTable{seed: maphash.MakeSeed(), entries: make([]KeyEntry, 0, n), builtAt: now}
	kt.slots = allocSlots(kt, size)
	return kt
}

func (kt *keyTable) hash(sum *[32]byte) uint64 { return maphash.Bytes(kt.seed, sum[:]) }

// insert puts the digest of entries[ref-1] in the table; a digest already
// there is replaced (the later key wins).
func (kt *keyTable) insert(sum [32]byte, ref uint32) {
	mask := uint64(len(kt.slots) - 1)
	for i := kt.hash(&sum) & mask; ; i = (i + 1) & mask {
		s := &kt.slots[i]
		if s.ref == 0 {
			s.sum, s.ref = sum, ref
			kt.n++
			return
		}
		if s.sum == sum {
			s.ref = ref
			return
		}
	}
}

// index fills byClient (after the last insert).
func (kt *keyTable) index() {
	kt.byClient = make(map[string][]uint32)
	for i := range kt.slots {
		if r := kt.slots[i].ref; r != 0 {
			id := kt.entries[r-1].Client.ID
			kt.byClient[id] = append(kt.byClient[id], uint32(i))
		}
	}
	runtime.KeepAlive(kt)
}

// find returns the entry of sum, whose hash is h, or nil.
func (kt *keyTable) find(h uint64, sum *[32]byte) *KeyEntry {
	mask := uint64(len(kt.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &kt.slots[i]
		if s.ref == 0 {
			return nil
		}
		if s.sum == *sum {
			return &kt.entries[s.ref-1]
		}
	}
}

// each calls f with every digest and entry of the table.
func (kt *keyTable) each(f func(sum *[32]byte, e *KeyEntry)) {
	for i := range kt.slots {
		if s := &kt.slots[i]; s.ref != 0 {
			f(&s.sum, &kt.entries[s.ref-1])
		}
	}
	runtime.KeepAlive(kt)
}

// Key returns the entry of the key whose SHA-256 digest is sum, or nil.
func (x *Index) Key(sum *[32]byte) *KeyEntry {
	kt := x.base
	if kt == nil {
		return nil
	}
	h := kt.hash(sum)
	if x.over.cells != nil {
		if c := x.over.find(h, sum); c != nil {
			return c.e
		}
	}
	e := kt.find(h, sum)
	runtime.KeepAlive(kt) // the slots are unmapped when kt is collected
	return e
}

// EachUsage calls f with the ID and usage of every key.
func (x *Index) EachUsage(f func(id string, u *Usage)) {
	x.each(func(_ *[32]byte, e *KeyEntry) { f(e.Identity.KeyID, e.Usage) })
}

// each calls f with the digest and entry of every key of x.
func (x *Index) each(f func(sum *[32]byte, e *KeyEntry)) {
	if x.base == nil {
		return
	}
	x.base.each(func(sum *[32]byte, e *KeyEntry) {
		if x.over.cells == nil || x.over.find(x.base.hash(sum), sum) == nil {
			f(sum, e)
		}
	})
	for i := range x.over.cells {
		if c := &x.over.cells[i]; c.used && c.e != nil {
			f(&c.sum, c.e)
		}
	}
}

// Len returns the number of API keys in the index (active or not).
func (x *Index) Len() int { return x.nkeys }
