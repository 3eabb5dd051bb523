package credentials

import (
	"maps"
	"time"
)

// IndexDelta is a change to the records an Index was built from, as
// committed by one revision. With applies it.
type IndexDelta struct {
	Revision uint64
	// Tenants, Clients and APIKeys are the records added or changed.
	Tenants []Tenant
	Clients []Client
	APIKeys []APIKey
	// DeleteTenants and DeleteClients name the records removed. The keys
	// of a removed client leave the index with it.
	DeleteTenants []string
	DeleteClients []string
	// Removed holds the previous record of every API key deleted or
	// changed (only its ID and digest are read), so that a digest a key
	// no longer has leaves the index.
	Removed []APIKey
	// HMACKeys are the HMAC keys added or changed (with their secrets);
	// DeleteHMACKeys names removed ones (keys of a removed client leave
	// with it).
	HMACKeys       []HMACKey
	DeleteHMACKeys []string
	// Issuers are the issuers added or changed (with their oct keys'
	// secrets); DeleteIssuers names removed ones ("<tenant>/<name>").
	Issuers       []Issuer
	DeleteIssuers []string
	// Revocations are the revocations added or changed.
	Revocations []Revocation
}

// With returns the index of x's records changed by d, as BuildIndex of
// the changed records would build it, in time proportional to the size
// of d (plus the keys of changed clients and tenants) rather than to the
// number of keys. x is not modified and stays valid; usage counters
// carry over. Keys of clients or tenants that change are re-derived from
// their previous entries.
//
// Changed keys go to an overlay in front of the shared base table; when
// the overlay outgrows a fraction of the base, With folds both into a
// new base table (in time proportional to the number of keys).
func (x *Index) With(d *IndexDelta) *Index {
	if x.base == nil {
		x = BuildIndex(IndexData{}, nil)
	}
	n := &Index{
		Revision: d.Revision,
		base:     x.base,
		over:     x.over.clone(len(d.APIKeys) + len(d.Removed)),
		nkeys:    x.nkeys,
		tenants:  x.tenants,
		clients:  x.clients,
		Counts:   x.Counts,
	}
	now := time.Now().UnixNano()

	// Tenants and clients, copy-on-write.
	changed := map[string]bool{} // client IDs whose entry changes
	if len(d.Tenants)+len(d.DeleteTenants) > 0 {
		n.tenants = maps.Clone(x.tenants)
		slugs := map[string]bool{}
		for _, slug := range d.DeleteTenants {
			delete(n.tenants, slug)
			slugs[slug] = true
		}
		for i := range d.Tenants {
			n.tenants[d.Tenants[i].Slug] = d.Tenants[i].Disabled
			slugs[d.Tenants[i].Slug] = true
		}
		for id, ci := range x.clients {
			if slugs[ci.rec.Tenant] {
				changed[id] = true
			}
		}
	}
	for i := range d.Clients {
		changed[d.Clients[i].ID] = true
	}
	for _, id := range d.DeleteClients {
		changed[id] = true
	}
	if len(changed) > 0 {
		n.clients = maps.Clone(x.clients)
		for _, id := range d.DeleteClients {
			delete(n.clients, id)
		}
		for i := range d.Clients {
			n.clients[d.Clients[i].ID] = n.newClientInfo(&d.Clients[i])
		}
		for id := range changed {
			if ci := n.clients[id]; ci != nil && ci == x.clients[id] { // a tenant changed
				n.clients[id] = n.newClientInfo(&ci.rec)
			}
		}
	}

	// Removed keys, remembering their usage for the new records.
	usage := make(map[string]*Usage, len(d.Removed))
	for i := range d.Removed {
		k := &d.Removed[i]
		sum := k.Sum()
		if e := n.Key(&sum); e != nil && e.Identity.KeyID == k.ID {
			usage[k.ID] = e.Usage
			n.set(&sum, nil, now)
		}
	}

	// Keys of changed clients: re-derived, or gone with their client.
	if len(changed) > 0 {
		var sums [][32]byte
		var olds []*KeyEntry
		visit := func(sum *[32]byte, e *KeyEntry) {
			if changed[e.Client.ID] {
				sums, olds = append(sums, *sum), append(olds, e)
			}
		}
		for id := range changed {
			for _, pos := range n.base.byClient[id] {
				sum, e := n.base.at(pos)
				if n.over.find(n.base.hash(sum), sum) == nil {
					visit(sum, e)
				}
			}
		}
		for i := range n.over.cells {
			if c := &n.over.cells[i]; c.used && c.e != nil {
				visit(&c.sum, c.e)
			}
		}
		fresh := make([]KeyEntry, len(olds))
		for i, old := range olds {
			sum := sums[i]
			ci := n.clients[old.Client.ID]
			if ci == nil {
				n.set(&sum, nil, now)
				continue
			}
			e := &fresh[i]
			*e = *old
			ci.attach(e)
			n.set(&sum, e, now)
		}
	}

	// Added and changed keys.
	entries := make([]KeyEntry, len(d.APIKeys))
	for i := range d.APIKeys {
		k := &d.APIKeys[i]
		sum := k.Sum()
		cur := n.Key(&sum)
		ci := n.clients[k.ClientID]
		if ci == nil {
			if cur != nil && cur.Identity.KeyID == k.ID {
				n.set(&sum, nil, now)
			}
			continue
		}
		e := &entries[i]
		ci.fill(e, k)
		switch {
		case usage[k.ID] != nil:
			e.Usage = usage[k.ID]
		case cur != nil && cur.Identity.KeyID == k.ID:
			e.Usage = cur.Usage
		default:
			e.Usage = newUsage(k)
		}
		n.set(&sum, e, now)
	}

	n.Counts.Tenants = len(n.tenants)
	if len(changed) > 0 {
		n.Counts.Clients = 0
		for _, ci := range n.clients {
			if ci.entry.Active {
				n.Counts.Clients++
			}
		}
	}
	n.withJWT(x, d, time.Unix(0, now))
	n.withHMAC(x, d, len(changed) > 0, now)
	if n.over.n > max(minCompact, n.base.n/64) {
		n.compact(now)
	}
	return n
}

// minCompact is the overlay size below which With never compacts (a
// variable for tests).
var minCompact = 1024

// set makes e (nil: no key) the entry of sum in the overlay of x, which
// is not yet published, keeping Len and Counts.APIKeys.
func (x *Index) set(sum *[32]byte, e *KeyEntry, now int64) {
	h := x.base.hash(sum)
	c := x.over.find(h, sum)
	var cur *KeyEntry
	switch {
	case c != nil:
		cur = c.e
		if c.active {
			x.Counts.APIKeys--
		}
	default:
		cur = x.base.find(h, sum)
		if cur != nil && cur.activeAt(x.base.builtAt) {
			x.Counts.APIKeys--
		}
		c = x.over.add(h, sum)
	}
	if cur != nil {
		x.nkeys--
	}
	c.e, c.active = e, false
	if e != nil {
		x.nkeys++
		c.active = e.activeAt(now)
		if c.active {
			x.Counts.APIKeys++
		}
	}
}

// compact folds the overlay of x, which is not yet published, into a new
// base table.
func (x *Index) compact(now int64) {
	kt := newKeyTable(x.nkeys, now)
	x.each(func(sum *[32]byte, e *KeyEntry) {
		kt.recs = append(kt.recs, keyRecord{sum: *sum, entry: *e})
		kt.insert(uint32(len(kt.recs)))
	})
	kt.index()
	x.base, x.over = kt, overlay{}
	x.nkeys = kt.n
	x.count()
}

// overlay is a small open-addressing table of the keys changed since the
// base table was built, hashed with the base table's seed. A cell with a
// nil entry hides a key of the base.
type overlay struct {
	cells []overCell // nil or a power of two, at most 1/2 full
	n     int
}

type overCell struct {
	sum    [32]byte
	h      uint64
	e      *KeyEntry
	used   bool
	active bool // e is counted in Counts.APIKeys
}

// clone returns a copy of o with room for extra more cells.
func (o *overlay) clone(extra int) overlay {
	c := overlay{n: o.n}
	size := len(o.cells)
	for size < 2*(o.n+extra) {
		size = max(16, size<<1)
	}
	if size == len(o.cells) {
		c.cells = append([]overCell(nil), o.cells...)
		return c
	}
	c.rehash(o.cells, size)
	return c
}

func (o *overlay) rehash(cells []overCell, size int) {
	o.cells = make([]overCell, size)
	mask := uint64(size - 1)
	for i := range cells {
		if oc := &cells[i]; oc.used {
			j := oc.h & mask
			for o.cells[j].used {
				j = (j + 1) & mask
			}
			o.cells[j] = *oc
		}
	}
}

// find returns the cell of sum, whose hash is h, or nil.
func (o *overlay) find(h uint64, sum *[32]byte) *overCell {
	if o.cells == nil {
		return nil
	}
	mask := uint64(len(o.cells) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		c := &o.cells[i]
		if !c.used {
			return nil
		}
		if c.h == h && c.sum == *sum {
			return c
		}
	}
}

// add returns a new cell for sum, which is not in o, growing o as needed.
func (o *overlay) add(h uint64, sum *[32]byte) *overCell {
	if 2*(o.n+1) > len(o.cells) {
		o.rehash(o.cells, max(16, 2*len(o.cells)))
	}
	mask := uint64(len(o.cells) - 1)
	i := h & mask
	for o.cells[i].used {
		i = (i + 1) & mask
	}
	c := &o.cells[i]
	c.sum, c.h, c.used = *sum, h, true
	o.n++
	return c
}
