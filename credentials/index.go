package credentials

import (
	"hash/maphash"
	"math"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
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

// KeyEntry is an API key as Check sees it. The fields Check reads first
// come first: with the digest in front of them they fill one cache line
// of the key table (see keyRecord).
type KeyEntry struct {
	Client   *ClientEntry
	Expires  int64 // Unix nanoseconds; 0: never
	Disabled bool
	Usage    *Usage
	Scopes   []string // the key's own (narrower) scopes; empty: the client's
	Identity Identity
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
	jwtState
	hmacState
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
// imported digests cannot be chosen to collide) over 8-byte slots that
// hold 32 bits of the digest's hash and the position of its record: the
// slots of a million keys take 16 MiB (a table of whole digests took
// 75 MB), pointer-free (the GC never scans them) and, on Linux, backed by
// transparent huge pages where the OS has them (see allocSlots), so a
// random lookup pays fewer cache and TLB misses. A slot whose hash bits
// match leads to the record, which holds the whole digest followed by
// the fields Check reads first, in one aligned cache line: a lookup that
// finds a key touches one line of slots and one line of its record
// before Check needs anything else. A map[[32]byte]*KeyEntry of
// separately allocated entries read a control word, a slot and a
// scattered entry; see BenchmarkLookup* and BenchmarkMapLookup* for the
// difference.
type keyTable struct {
	slots    []slot // len is a power of two, at most 3/4 full
	seed     maphash.Seed
	n        int
	recs     []keyRecord
	byClient map[string][]uint32 // client ID → positions in recs of its keys
	dups     bool                // a later record replaced an earlier one
	builtAt  int64               // Unix nanoseconds at which activity was counted
}

// slot is one cell of the key table: the high 32 bits of the hash of a
// record's digest and the record's position in recs plus one (0: empty).
type slot struct {
	tag uint32
	ref uint32
}

// keyRecord is a key's digest and entry, 192 bytes: in a slice that
// starts on a cache line (any large allocation does), the digest and the
// entry's first fields share one line.
type keyRecord struct {
	sum   [32]byte
	entry KeyEntry
	_     [192 - 32 - unsafe.Sizeof(KeyEntry{})]byte
}

// IndexData is what BuildIndex needs from storage.
type IndexData struct {
	Revision uint64
	Tenants  []Tenant
	Clients  []Client
	APIKeys  []APIKey
	// HMACKeys carry their secrets (decrypted by the store).
	HMACKeys []HMACKey
	// Issuers carry their oct keys' secrets (decrypted by the store).
	Issuers []Issuer
	// Revocations may include expired entries; the index skips them.
	Revocations []Revocation
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
		kt.recs = append(kt.recs, keyRecord{sum: sum})
		e := &kt.recs[len(kt.recs)-1].entry
		ci.fill(e, k)
		e.Usage = u
		kt.insert(uint32(len(kt.recs)))
	}
	kt.index()
	idx.base = kt
	idx.nkeys = kt.n
	idx.count()
	idx.buildJWT(d.Issuers, d.Revocations, time.Unix(0, now))
	idx.buildHMAC(hmacRecords(d.HMACKeys), now)
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
	x.Counts = Counts{Tenants: len(x.tenants), Issuers: x.Counts.Issuers, HMACKeys: x.Counts.HMACKeys}
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
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, k := range key {
		if ScopeGranted(client, k) {
			add(k)
			continue
		}
		// A key scope wider than the client's ("read:*" under a client
		// with "read:projects") grants the client scopes it covers.
		for _, c := range client {
			if ScopeGranted([]string{k}, c) {
				add(c)
			}
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
	kt := &keyTable{seed: maphash.MakeSeed(), recs: make([]keyRecord, 0, n), builtAt: now}
	kt.slots = allocSlots(kt, size)
	return kt
}

func (kt *keyTable) hash(sum *[32]byte) uint64 { return maphash.Bytes(kt.seed, sum[:]) }

// insert puts recs[ref-1] in the table; a digest already there is
// replaced (the later key wins).
func (kt *keyTable) insert(ref uint32) {
	sum := &kt.recs[ref-1].sum
	h := kt.hash(sum)
	tag := uint32(h >> 32)
	mask := uint64(len(kt.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &kt.slots[i]
		if s.ref == 0 {
			s.tag, s.ref = tag, ref
			kt.n++
			return
		}
		if s.tag == tag && kt.recs[s.ref-1].sum == *sum {
			s.ref = ref
			kt.dups = true
			return
		}
	}
}

// index fills byClient (after the last insert).
func (kt *keyTable) index() {
	kt.byClient = make(map[string][]uint32)
	for i := range kt.recs {
		if kt.live(i) {
			id := kt.recs[i].entry.Client.ID
			kt.byClient[id] = append(kt.byClient[id], uint32(i))
		}
	}
}

// live reports whether recs[i] is in the table (not replaced by a later
// record of the same digest).
func (kt *keyTable) live(i int) bool {
	if !kt.dups {
		return true
	}
	r := &kt.recs[i]
	e := kt.find(kt.hash(&r.sum), &r.sum)
	runtime.KeepAlive(kt)
	return e == &r.entry
}

// find returns the entry of sum, whose hash is h, or nil.
func (kt *keyTable) find(h uint64, sum *[32]byte) *KeyEntry {
	tag := uint32(h >> 32)
	mask := uint64(len(kt.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := kt.slots[i]
		if s.ref == 0 {
			return nil
		}
		if s.tag == tag {
			if r := &kt.recs[s.ref-1]; r.sum == *sum {
				return &r.entry
			}
		}
	}
}

// at returns the digest and entry of recs[i].
func (kt *keyTable) at(i uint32) (*[32]byte, *KeyEntry) {
	r := &kt.recs[i]
	return &r.sum, &r.entry
}

// each calls f with every digest and entry of the table.
func (kt *keyTable) each(f func(sum *[32]byte, e *KeyEntry)) {
	for i := range kt.recs {
		if kt.live(i) {
			f(&kt.recs[i].sum, &kt.recs[i].entry)
		}
	}
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

// EachKey calls f with the digest and entry of every key in the index,
// in no particular order, until f returns false. The entry's
// Identity.KeyID and Client.ID are the key's ID and client ID.
func (x *Index) EachKey(f func(sum *[32]byte, e *KeyEntry) bool) {
	done := false
	x.each(func(sum *[32]byte, e *KeyEntry) {
		if !done && !f(sum, e) {
			done = true
		}
	})
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
