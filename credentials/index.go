package credentials

import (
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
	keys     map[[32]byte]*KeyEntry
	usage    map[string]*Usage
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
		keys:     make(map[[32]byte]*KeyEntry, len(d.APIKeys)),
		usage:    make(map[string]*Usage, len(d.APIKeys)),
	}
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
		e := &KeyEntry{
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
		}
		e.Identity.Scopes = strings.Join(effectiveScopes(ce.Scopes, k.Scopes), " ")
		if k.ExpiresAt != nil {
			e.Expires = k.ExpiresAt.UnixNano()
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
		idx.keys[k.Sum()] = e
		if !e.Disabled && ce.Active && (e.Expires == 0 || e.Expires > time.Now().UnixNano()) {
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

// Key returns the entry of the key whose SHA-256 digest is sum, or nil.
func (x *Index) Key(sum *[32]byte) *KeyEntry { return x.keys[*sum] }

// EachUsage calls f with the ID and usage of every key.
func (x *Index) EachUsage(f func(id string, u *Usage)) {
	for id, u := range x.usage {
		f(id, u)
	}
}

// Len returns the number of API keys in the index (active or not).
func (x *Index) Len() int { return len(x.keys) }
