package bolt

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/keygate/keygate/credentials"
)

// maxAuditIDs bounds each ID list of an audit entry (the counts in its
// summary stay exact), so a 100,000-key sync does not write megabytes of
// audit log.
const maxAuditIDs = 1000

// Apply commits ch in one bbolt transaction, fsynced before it returns,
// and publishes the new Index before it returns. See credentials.Store
// for the error codes; a failed write of the file is unavailable (disk
// full, I/O error) or internal. A failed Apply changes nothing.
func (s *Store) Apply(ctx context.Context, ch *credentials.Changes, opt credentials.ApplyOptions) (credentials.ApplyResult, error) {
	if ch == nil {
		return credentials.ApplyResult{}, credentials.Errorf(credentials.EInvalid, "no changes given")
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return credentials.ApplyResult{}, err
	}
	defer unlock()
	old := s.cur.Load()
	res := credentials.ApplyResult{Revision: old.rev}
	if opt.IfMatch != nil && *opt.IfMatch != old.rev {
		return res, credentials.Errorf(credentials.EPrecondition, "the store is at revision %d, not %d", old.rev, *opt.IfMatch)
	}
	now := s.now().UTC().Round(0)
	var p *plan
	err = s.view(func(tx *bbolt.Tx) error {
		var err error
		p, err = makePlan(old, ch, now, s.seal, tx)
		return err
	})
	if err != nil {
		return res, err
	}
	if !p.changed() {
		return res, nil
	}
	if err := ctxErr(ctx); err != nil {
		return res, err
	}
	next := p.next
	next.rev, next.updated = old.rev+1, now
	entry := credentials.AuditEntry{
		Revision: next.rev,
		Time:     now,
		Actor:    opt.Actor,
		Summary:  p.summary(),
		IDs:      p.ids(),
	}
	if err := s.commit(p, &entry); err != nil {
		// The adapter (admin) logs the failure once; this is detail.
		s.log.Debug("credential change not committed", zap.String("actor", opt.Actor), zap.Uint64("revision", old.rev), zap.Error(err))
		return res, err
	}
	t0 := time.Now()
	if ch.Replace {
		next.idx = credentials.BuildIndex(p.indexData(), old.idx)
	} else {
		next.idx = old.idx.With(p.delta())
	}
	s.cur.Store(next)
	s.log.Debug("credentials changed", zap.String("actor", opt.Actor), zap.Uint64("revision", next.rev),
		zap.Any("summary", entry.Summary), zap.Duration("index_build", time.Since(t0)))
	return credentials.ApplyResult{Revision: next.rev, Changed: true, Summary: entry.Summary}, nil
}

// commit writes p in one transaction. A failed commit (the write or fsync
// of the file) is unavailable: the disk is full or failing.
func (s *Store) commit(p *plan, entry *credentials.AuditEntry) error {
	tx, err := s.db.Begin(true)
	if err != nil {
		return writeError(s.path, err)
	}
	if err := p.write(tx, entry); err != nil {
		tx.Rollback()
		return writeError(s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return &credentials.Error{Code: credentials.EUnavailable, Message: "the credential store cannot be written",
			Err: fmt.Errorf("store %s: commit: %w", s.path, err)}
	}
	return nil
}

// writeError turns a failed commit into a credentials error: unavailable
// when the disk or file cannot take the write, internal otherwise.
func writeError(path string, err error) error {
	cause := fmt.Errorf("store %s: %w", path, err)
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EIO, syscall.EROFS,
		berrors.ErrDatabaseNotOpen, berrors.ErrMaxSizeReached} {
		if errors.Is(err, e) {
			return &credentials.Error{Code: credentials.EUnavailable, Message: "the credential store cannot be written", Err: cause}
		}
	}
	return credentials.Internal(cause)
}

// plan is the difference between a state and the state after a Changes.
type plan struct {
	old  *state
	next *state // rev, updated and idx are set by Apply

	putT  []*credentials.Tenant
	goneT []string
	putC  []*credentials.Client
	goneC []string
	putK  []*credentials.APIKey
	goneK []keyRef // ordered by ID

	prevK map[string]*credentials.APIKey // stored records of the upserted keys that exist
	upK   map[string]*credentials.APIKey // every upserted key (for a Replace, every key)

	putI      []*storedIssuer // ordered by ID
	goneI     []string
	putH      []*storedHMACKey // ordered by ID
	goneH     []string         // explicit, cascaded from clients, or by Replace
	sealedNew bool             // putI or putH holds a newly sealed secret
	keyCheck  []byte           // the master key check, written with the first sealed secret

	putR []*credentials.Revocation // added or extended, ordered by jti
	allR []credentials.Revocation  // Replace: the stored unexpired revocations

	revC    []*credentials.Client // clients changed only by RevokeTokensOf
	revoked []string              // clients whose token_version is incremented
}

// keyRef names a stored API key and its digest.
type keyRef struct {
	id  string
	sum [32]byte
}

// recordReader returns a function that reads API-key records from tx
// (nil: no such key). The records are decoded, so they outlive tx.
func recordReader(tx *bbolt.Tx) func(id string) (*credentials.APIKey, error) {
	b := tx.Bucket(bucketAPIKeys)
	return func(id string) (*credentials.APIKey, error) {
		v := b.Get([]byte(id))
		if v == nil {
			return nil, nil
		}
		k := new(credentials.APIKey)
		if err := decodeKey(v, k); err != nil {
			return nil, credentials.Internal(fmt.Errorf("API key %q: %w", id, err))
		}
		return k, nil
	}
}

// indexData returns the records of the state after a Replace: every key
// of the new state is upserted; the revocations are the stored ones
// (read by makePlan) and the new ones.
func (p *plan) indexData() credentials.IndexData {
	d := p.next.indexData()
	d.APIKeys = make([]credentials.APIKey, 0, len(p.upK))
	for _, k := range p.upK {
		d.APIKeys = append(d.APIKeys, *k)
	}
	put := make(map[string]bool, len(p.putR))
	for _, r := range p.putR {
		put[r.JTI] = true
		d.Revocations = append(d.Revocations, *r)
	}
	for _, r := range p.allR {
		if !put[r.JTI] {
			d.Revocations = append(d.Revocations, r)
		}
	}
	return d
}

// delta returns the change of the plan to the index.
func (p *plan) delta() *credentials.IndexDelta {
	d := &credentials.IndexDelta{
		Revision:       p.next.rev,
		DeleteTenants:  p.goneT,
		DeleteClients:  p.goneC,
		DeleteIssuers:  p.goneI,
		DeleteHMACKeys: p.goneH,
		Tenants:        make([]credentials.Tenant, len(p.putT)),
		Clients:        make([]credentials.Client, 0, len(p.putC)+len(p.revC)),
		APIKeys:        make([]credentials.APIKey, len(p.putK)),
		Issuers:        make([]credentials.Issuer, len(p.putI)),
		HMACKeys:       make([]credentials.HMACKey, len(p.putH)),
		Revocations:    make([]credentials.Revocation, len(p.putR)),
	}
	for i, t := range p.putT {
		d.Tenants[i] = *t
	}
	for _, c := range p.putC {
		d.Clients = append(d.Clients, *c)
	}
	for _, c := range p.revC {
		d.Clients = append(d.Clients, *c)
	}
	for i, si := range p.putI {
		d.Issuers[i] = si.rec
	}
	for i, sk := range p.putH {
		d.HMACKeys[i] = sk.rec
	}
	for i, r := range p.putR {
		d.Revocations[i] = *r
	}
	for i, k := range p.putK {
		d.APIKeys[i] = *k
		if o := p.prevK[k.ID]; o != nil {
			d.Removed = append(d.Removed, *o)
		}
	}
	for _, g := range p.goneK {
		d.Removed = append(d.Removed, credentials.APIKey{ID: g.id, KeySHA256: hex.EncodeToString(g.sum[:])})
	}
	return d
}

func (p *plan) changed() bool {
	return len(p.putT)+len(p.goneT)+len(p.putC)+len(p.goneC)+len(p.putK)+len(p.goneK)+
		len(p.putI)+len(p.goneI)+len(p.putH)+len(p.goneH)+len(p.putR)+len(p.revoked) > 0
}

func (p *plan) summary() map[string]map[string]int {
	m := map[string]map[string]int{}
	add := func(kind, verb string, n int) {
		if n == 0 {
			return
		}
		if m[kind] == nil {
			m[kind] = map[string]int{}
		}
		m[kind][verb] = n
	}
	add("tenants", "upserted", len(p.putT))
	add("tenants", "deleted", len(p.goneT))
	add("clients", "upserted", len(p.putC))
	add("clients", "deleted", len(p.goneC))
	add("apikeys", "upserted", len(p.putK))
	add("apikeys", "deleted", len(p.goneK))
	add("issuers", "upserted", len(p.putI))
	add("issuers", "deleted", len(p.goneI))
	add("hmackeys", "upserted", len(p.putH))
	add("hmackeys", "deleted", len(p.goneH))
	add("revocations", "added", len(p.putR))
	add("token_versions", "incremented", len(p.revoked))
	return m
}

func (p *plan) ids() map[string][]string {
	m := map[string][]string{}
	add := func(name string, ids []string) {
		if len(ids) > maxAuditIDs {
			ids = ids[:maxAuditIDs]
		}
		if len(ids) > 0 {
			m[name] = ids
		}
	}
	add("tenants.upserted", idsOf(p.putT, func(t *credentials.Tenant) string { return t.Slug }))
	add("tenants.deleted", p.goneT)
	add("clients.upserted", idsOf(p.putC, func(c *credentials.Client) string { return c.ID }))
	add("clients.deleted", p.goneC)
	add("apikeys.upserted", idsOf(p.putK, func(k *credentials.APIKey) string { return k.ID }))
	add("apikeys.deleted", idsOf(p.goneK, func(g keyRef) string { return g.id }))
	add("issuers.upserted", idsOf(p.putI, func(si *storedIssuer) string { return si.rec.ID() }))
	add("issuers.deleted", p.goneI)
	add("hmackeys.upserted", hmacIDs(p.putH))
	add("hmackeys.deleted", p.goneH)
	add("revocations.added", idsOf(p.putR, func(r *credentials.Revocation) string { return r.JTI }))
	add("token_versions.incremented", p.revoked)
	return m
}

func idsOf[T any](list []T, id func(T) string) []string {
	n := min(len(list), maxAuditIDs)
	out := make([]string, n)
	for i := range n {
		out[i] = id(list[i])
	}
	return out
}

// field names record id of kind in an error ("clients[cl_x]"), or its
// position when the ID itself is malformed.
func field(kind, id string, i int, idOK bool) string {
	if idOK {
		return kind + "[" + id + "]"
	}
	return fmt.Sprintf("%s[%d]", kind, i)
}

func notFound(kind, id string) error {
	return credentials.Errorf(credentials.ENotFound, "%s %q does not exist", kind, id)
}

// alreadyExists is the conflict of a create whose ID is taken.
func alreadyExists(kind, id string) error {
	return &credentials.Error{Code: credentials.EConflict, Field: "id",
		Message: fmt.Sprintf("%s %q already exists; use PUT to replace it", kind, id)}
}

// makePlan validates ch against old, whose API-key and revocation
// records it reads from tx, and computes the new state, sealing new
// secrets with seal (nil: no master key). It does not modify old.
func makePlan(old *state, ch *credentials.Changes, now time.Time, seal *sealer, tx *bbolt.Tx) (*plan, error) {
	get := recordReader(tx)
	p := &plan{old: old, next: &state{tenants: old.tenants, clients: old.clients, issuers: old.issuers, hmacKeys: old.hmacKeys}, prevK: map[string]*credentials.APIKey{}}
	if seal != nil {
		p.keyCheck = seal.check
	}
	prev := func(id string) (*credentials.APIKey, error) { // get, remembered
		if o, ok := p.prevK[id]; ok {
			return o, nil
		}
		o, err := get(id)
		if err == nil {
			p.prevK[id] = o
		}
		return o, err
	}

	// Normalized copies of the upserts.
	upT := make(map[string]*credentials.Tenant, len(ch.Tenants))
	for i := range ch.Tenants {
		t := ch.Tenants[i]
		f := field("tenants", t.Slug, i, credentials.ValidSlug(t.Slug))
		if err := t.Validate(f); err != nil {
			return nil, err
		}
		if upT[t.Slug] != nil {
			return nil, credentials.FieldError(f+".slug", "tenant %q is given twice", t.Slug)
		}
		t.CreatedAt, t.UpdatedAt = time.Time{}, time.Time{}
		upT[t.Slug] = &t
	}
	upC := make(map[string]*credentials.Client, len(ch.Clients))
	for i := range ch.Clients {
		c := ch.Clients[i]
		f := field("clients", c.ID, i, credentials.ValidateID(credentials.ClientPrefix, c.ID, "") == nil)
		if err := c.Validate(f); err != nil {
			return nil, err
		}
		if upC[c.ID] != nil {
			return nil, credentials.FieldError(f+".id", "client %q is given twice", c.ID)
		}
		c.Roles, c.Scopes, c.AllowedCIDRs = cloneStrings(c.Roles), cloneStrings(c.Scopes), cloneStrings(c.AllowedCIDRs)
		c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
		upC[c.ID] = &c
	}
	upK := make(map[string]*credentials.APIKey, len(ch.APIKeys))
	for i := range ch.APIKeys {
		k := ch.APIKeys[i]
		f := "apikeys[" + k.ID + "]"
		if err := k.Normalize(f); err != nil {
			if credentials.ValidateID(credentials.APIKeyPrefix, k.ID, "") != nil {
				k = ch.APIKeys[i]
				return nil, k.Normalize(field("apikeys", k.ID, i, false))
			}
			return nil, err
		}
		if upK[k.ID] != nil {
			return nil, credentials.FieldError(f+".id", "API key %q is given twice", k.ID)
		}
		if k.ClientID == "" {
			o, err := prev(k.ID)
			if err != nil {
				return nil, err
			}
			if o == nil {
				return nil, credentials.FieldError(f+".client_id", "the new API key %q needs a client", k.ID)
			}
			k.ClientID = o.ClientID
		}
		k.Scopes = cloneStrings(k.Scopes)
		if k.ExpiresAt != nil {
			e := k.ExpiresAt.UTC().Round(0)
			k.ExpiresAt = &e
		}
		k.CreatedAt, k.UpdatedAt = time.Time{}, time.Time{}
		upK[k.ID] = &k
	}

	if ch.Create {
		for _, id := range slices.Sorted(maps.Keys(upC)) {
			if old.clients[id] != nil {
				return nil, alreadyExists("client", id)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(upK)) {
			o, err := prev(id)
			if err != nil {
				return nil, err
			}
			if o != nil {
				return nil, alreadyExists("API key", id)
			}
		}
	}

	// What goes away.
	goneT := map[string]bool{}
	explicitT := map[string]bool{}
	for i, slug := range ch.DeleteTenants {
		if old.tenants[slug] == nil {
			return nil, notFound("tenant", slug)
		}
		if upT[slug] != nil {
			return nil, credentials.FieldError(fmt.Sprintf("delete.tenants[%d]", i), "tenant %q is both upserted and deleted", slug)
		}
		goneT[slug], explicitT[slug] = true, true
	}
	goneC := map[string]bool{}
	for i, id := range ch.DeleteClients {
		if old.clients[id] == nil {
			return nil, notFound("client", id)
		}
		if upC[id] != nil {
			return nil, credentials.FieldError(fmt.Sprintf("delete.clients[%d]", i), "client %q is both upserted and deleted", id)
		}
		goneC[id] = true
	}
	goneK := map[string][32]byte{}
	for i, id := range ch.DeleteAPIKeys {
		o, err := prev(id)
		if err != nil {
			return nil, err
		}
		if o == nil {
			return nil, notFound("API key", id)
		}
		if upK[id] != nil {
			return nil, credentials.FieldError(fmt.Sprintf("delete.apikeys[%d]", i), "API key %q is both upserted and deleted", id)
		}
		goneK[id] = o.Sum()
	}
	if ch.Replace {
		for slug := range old.tenants {
			if upT[slug] == nil {
				goneT[slug] = true
			}
		}
		for id := range old.clients {
			if upC[id] == nil {
				goneC[id] = true
			}
		}
	}
	replaceOf := make(map[string]bool, len(ch.ReplaceKeysOf))
	for _, id := range ch.ReplaceKeysOf {
		replaceOf[id] = true
	}
	if ch.Replace || len(goneC) > 0 || len(replaceOf) > 0 {
		old.idx.EachKey(func(sum *[32]byte, e *credentials.KeyEntry) bool {
			if id := e.Identity.KeyID; upK[id] == nil && (ch.Replace || goneC[e.Client.ID] || replaceOf[e.Client.ID]) {
				goneK[id] = *sum
			}
			return true
		})
	}

	// Upserts that really change a record; server-managed fields are kept.
	for slug, t := range upT {
		if o := old.tenants[slug]; o != nil {
			if sameTenant(o, t) {
				continue
			}
			t.CreatedAt = o.CreatedAt
		} else {
			t.CreatedAt = now
		}
		t.UpdatedAt = now
		p.putT = append(p.putT, t)
	}
	for id, c := range upC {
		if o := old.clients[id]; o != nil {
			c.TokenVersion = max(c.TokenVersion, o.TokenVersion)
			if sameClient(o, c) {
				continue
			}
			c.CreatedAt = o.CreatedAt
		} else {
			c.CreatedAt = now
		}
		c.UpdatedAt = now
		p.putC = append(p.putC, c)
	}
	// Token revocations apply after the upserts: an upserted client gets
	// the incremented version of its upsert.
	if len(ch.RevokeTokensOf) > 0 {
		put := make(map[string]*credentials.Client, len(p.putC))
		for _, c := range p.putC {
			put[c.ID] = c
		}
		ids := slices.Clone(ch.RevokeTokensOf)
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) { // one increment per client and batch
			if upC[id] == nil && (old.clients[id] == nil || goneC[id]) {
				return nil, notFound("client", id)
			}
			if c := put[id]; c != nil {
				c.TokenVersion++
			} else {
				c := copyClient(old.clients[id])
				c.TokenVersion++
				c.UpdatedAt = now
				p.revC = append(p.revC, &c)
			}
			p.revoked = append(p.revoked, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(upK)) {
		k := upK[id]
		o, err := prev(id)
		if err != nil {
			return nil, err
		}
		if o != nil {
			if sameKey(o, k) {
				continue
			}
			k.CreatedAt = o.CreatedAt
		} else {
			k.CreatedAt = now
		}
		k.UpdatedAt = now
		p.putK = append(p.putK, k)
	}
	p.goneT, p.goneC = sortedKeys(goneT), sortedKeys(goneC)
	for _, id := range slices.Sorted(maps.Keys(goneK)) {
		p.goneK = append(p.goneK, keyRef{id, goneK[id]})
	}
	p.upK = upK
	sort.Slice(p.putT, func(i, j int) bool { return p.putT[i].Slug < p.putT[j].Slug })
	sort.Slice(p.putC, func(i, j int) bool { return p.putC[i].ID < p.putC[j].ID })
	sort.Slice(p.putK, func(i, j int) bool { return p.putK[i].ID < p.putK[j].ID })

	// The new maps (copy-on-write: only the ones that change are cloned;
	// the keys are derived in time proportional to the change).
	if len(p.putT)+len(p.goneT) > 0 {
		p.next.tenants = maps.Clone(old.tenants)
		for _, slug := range p.goneT {
			delete(p.next.tenants, slug)
		}
		for _, t := range p.putT {
			p.next.tenants[t.Slug] = t
		}
	}
	if len(p.putC)+len(p.goneC)+len(p.revC) > 0 {
		p.next.clients = maps.Clone(old.clients)
		for _, id := range p.goneC {
			delete(p.next.clients, id)
		}
		for _, c := range p.putC {
			p.next.clients[c.ID] = c
		}
		for _, c := range p.revC {
			p.next.clients[c.ID] = c
		}
	}
	upI, err := p.planIssuers(ch, now, seal)
	if err != nil {
		return nil, err
	}
	upH, err := p.planHMACKeys(ch, now, seal, goneC)
	if err != nil {
		return nil, err
	}
	if err := p.planRevocations(ch, now, tx); err != nil {
		return nil, err
	}
	if err := p.checkIntegrity(upC, upK, upI, goneK, explicitT); err != nil {
		return nil, err
	}
	if err := p.checkHMACIntegrity(upH); err != nil {
		return nil, err
	}
	return p, nil
}

// checkIntegrity verifies the new state: every client's and issuer's
// tenant exists, every key's client exists, no two keys share a digest.
func (p *plan) checkIntegrity(upC map[string]*credentials.Client, upK map[string]*credentials.APIKey, upI map[string]*storedIssuer,
	goneK map[string][32]byte, explicitT map[string]bool) error {
	next := p.next
	for _, id := range slices.Sorted(maps.Keys(upC)) {
		if c := upC[id]; next.tenants[c.Tenant] == nil {
			return credentials.FieldError("clients["+id+"].tenant", "tenant %q of client %q does not exist", c.Tenant, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(upI)) {
		if t := upI[id].rec.Tenant; next.tenants[t] == nil {
			return credentials.FieldError("issuers["+id+"].tenant", "tenant %q of issuer %q does not exist", t, id)
		}
	}
	// Issuers sharing an iss value must each set tenant_claim, or a
	// token of that IdP could not tell which tenant it belongs to (and
	// would be accepted for whichever issuer sorts first).
	if len(upI) > 0 {
		byIss := map[string][]string{}
		for id, si := range next.issuers {
			byIss[si.rec.Issuer] = append(byIss[si.rec.Issuer], id)
		}
		for _, id := range slices.Sorted(maps.Keys(upI)) {
			others := byIss[upI[id].rec.Issuer]
			if len(others) < 2 {
				continue
			}
			for _, o := range others {
				if next.issuers[o].rec.TenantClaim == "" {
					slices.Sort(others)
					return credentials.FieldError("issuers["+id+"].tenant_claim",
						"issuers %s share the iss value %q: each must set tenant_claim so a token names its tenant", strings.Join(others, ", "), upI[id].rec.Issuer)
				}
			}
		}
	}
	if len(p.goneT) > 0 {
		var orphans []string
		for id, si := range next.issuers {
			if next.tenants[si.rec.Tenant] == nil {
				orphans = append(orphans, id)
			}
		}
		if len(orphans) > 0 {
			id := slices.Min(orphans)
			t := next.issuers[id].rec.Tenant
			if explicitT[t] {
				return credentials.Errorf(credentials.EConflict, "tenant %q still has issuers (%s); delete them first", t, id)
			}
			return credentials.FieldError("issuers["+id+"].tenant", "tenant %q of issuer %q does not exist", t, id)
		}
	}
	if len(p.goneT) > 0 {
		var orphans []string
		for id, c := range next.clients {
			if next.tenants[c.Tenant] == nil {
				orphans = append(orphans, id)
			}
		}
		if len(orphans) > 0 { // name the first, in a stable order
			id := slices.Min(orphans)
			c := next.clients[id]
			if explicitT[c.Tenant] {
				return credentials.Errorf(credentials.EConflict, "tenant %q still has clients (%s); delete them first", c.Tenant, id)
			}
			return credentials.FieldError("clients["+id+"].tenant", "tenant %q of client %q does not exist", c.Tenant, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(upK)) {
		if k := upK[id]; next.clients[k.ClientID] == nil {
			return credentials.FieldError("apikeys["+id+"].client_id", "client %q of API key %q does not exist", k.ClientID, id)
		}
	}
	if len(p.goneC) > 0 {
		// Keys of deleted clients were cascaded unless upserted (checked
		// above); this catches anything else.
		var err error
		p.old.idx.EachKey(func(_ *[32]byte, e *credentials.KeyEntry) bool {
			id := e.Identity.KeyID
			if _, gone := goneK[id]; gone || upK[id] != nil || next.clients[e.Client.ID] != nil {
				return true
			}
			err = credentials.FieldError("apikeys["+id+"].client_id", "client %q of API key %q does not exist", e.Client.ID, id)
			return false
		})
		if err != nil {
			return err
		}
	}
	// Digests. The old index holds every old key; a digest in it is free
	// when its owner is deleted or changed its digest in this batch.
	owner := make(map[[32]byte]string, len(p.putK))
	for _, k := range p.putK {
		sum := k.Sum()
		if other, dup := owner[sum]; dup {
			return credentials.FieldError("apikeys["+k.ID+"].key_sha256", "same key as API key %q", other)
		}
		owner[sum] = k.ID
	}
	for _, k := range p.putK {
		sum := k.Sum()
		e := p.old.idx.Key(&sum)
		if e == nil || e.Identity.KeyID == k.ID {
			continue
		}
		other := e.Identity.KeyID
		if _, gone := goneK[other]; gone {
			continue
		}
		if now := upK[other]; now != nil && now.KeySHA256 != k.KeySHA256 {
			continue
		}
		return credentials.FieldError("apikeys["+k.ID+"].key_sha256", "same key as API key %q", other)
	}
	return nil
}

// deleteAll deletes the records with the given keys from b.
func deleteAll(b *bbolt.Bucket, keys []string) error {
	for _, k := range keys {
		if err := b.Delete([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}

// write stores the plan in tx: records, digests, usage, meta and audit.
func (p *plan) write(tx *bbolt.Tx, entry *credentials.AuditEntry) error {
	bt, bc, bk := tx.Bucket(bucketTenants), tx.Bucket(bucketClients), tx.Bucket(bucketAPIKeys)
	bs, bu := tx.Bucket(bucketSums), tx.Bucket(bucketUsage)
	if err := deleteAll(bt, p.goneT); err != nil {
		return err
	}
	for _, t := range p.putT {
		if err := putJSON(bt, t.Slug, t); err != nil {
			return err
		}
	}
	if err := deleteAll(bc, p.goneC); err != nil {
		return err
	}
	for _, c := range p.putC {
		if err := putJSON(bc, c.ID, c); err != nil {
			return err
		}
	}
	for _, c := range p.revC {
		if err := putJSON(bc, c.ID, c); err != nil {
			return err
		}
	}
	if err := p.writeJWT(tx); err != nil {
		return err
	}
	if err := p.writeHMACKeys(tx); err != nil {
		return err
	}
	if p.sealedNew {
		m := tx.Bucket(bucketMeta)
		if m.Get(metaKeyCheck) == nil {
			if err := m.Put(metaKeyCheck, p.keyCheck); err != nil {
				return err
			}
		}
	}
	for _, g := range p.goneK {
		if err := bk.Delete([]byte(g.id)); err != nil {
			return err
		}
		if err := bu.Delete([]byte(g.id)); err != nil {
			return err
		}
	}
	for _, k := range p.putK {
		if err := putJSON(bk, k.ID, k); err != nil {
			return err
		}
	}
	// Digests of deleted and changed keys go first, so a digest that moves
	// to another key in this batch is written last. Digests are written in
	// byte order: bbolt inserts into an unsplit node, and random order
	// would move memory on every insert (quadratic for a large batch).
	var del [][32]byte
	for _, g := range p.goneK {
		del = append(del, g.sum)
	}
	for _, k := range p.putK {
		if o := p.prevK[k.ID]; o != nil && o.KeySHA256 != k.KeySHA256 {
			del = append(del, o.Sum())
		}
	}
	slices.SortFunc(del, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	for _, sum := range del {
		if err := bs.Delete(sum[:]); err != nil {
			return err
		}
	}
	type sumID struct {
		sum [32]byte
		id  string
	}
	put := make([]sumID, 0, len(p.putK))
	for _, k := range p.putK {
		if o := p.prevK[k.ID]; o == nil || o.KeySHA256 != k.KeySHA256 {
			put = append(put, sumID{k.Sum(), k.ID})
		}
	}
	slices.SortFunc(put, func(a, b sumID) int { return bytes.Compare(a.sum[:], b.sum[:]) })
	for _, e := range put {
		if err := bs.Put(e.sum[:], []byte(e.id)); err != nil {
			return err
		}
	}
	m := tx.Bucket(bucketMeta)
	if err := m.Put(metaRevision, u64(p.next.rev)); err != nil {
		return err
	}
	upd, _ := p.next.updated.MarshalText()
	if err := m.Put(metaUpdated, upd); err != nil {
		return err
	}
	a, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketAudit).Put(u64(entry.Revision), a)
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func sortedKeys(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}

// cloneStrings copies list so the stored record shares nothing with the
// caller; an empty list becomes nil (as it is decoded from JSON).
func cloneStrings(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	return slices.Clone(list)
}

// sameTenant, sameClient and sameKey compare the fields an upsert sets
// (not the server-managed ones). TestRecordFields fails when a record
// gains a field, so these stay complete.
func sameTenant(a, b *credentials.Tenant) bool {
	return a.DisplayName == b.DisplayName && a.Disabled == b.Disabled
}

func sameClient(a, b *credentials.Client) bool {
	return a.Tenant == b.Tenant && a.Name == b.Name && a.Description == b.Description &&
		slices.Equal(a.Roles, b.Roles) && slices.Equal(a.Scopes, b.Scopes) &&
		slices.Equal(a.AllowedCIDRs, b.AllowedCIDRs) && a.RateLimit == b.RateLimit &&
		a.Disabled == b.Disabled && a.TokenVersion == b.TokenVersion
}

func sameKey(a, b *credentials.APIKey) bool {
	return a.ClientID == b.ClientID && a.Name == b.Name && a.KeySHA256 == b.KeySHA256 &&
		slices.Equal(a.Scopes, b.Scopes) && a.Disabled == b.Disabled &&
		(a.ExpiresAt == nil) == (b.ExpiresAt == nil) && (a.ExpiresAt == nil || a.ExpiresAt.Equal(*b.ExpiresAt))
}

// writeJWT stores the issuer and revocation changes of p in tx and prunes
// the expired revocations. The buckets are created if the file predates them.
func (p *plan) writeJWT(tx *bbolt.Tx) error {
	if len(p.putI)+len(p.goneI) > 0 {
		b, err := tx.CreateBucketIfNotExists(bucketIssuers)
		if err != nil {
			return err
		}
		if err := deleteAll(b, p.goneI); err != nil {
			return err
		}
		for _, si := range p.putI {
			data, err := si.marshal()
			if err != nil {
				return err
			}
			if err := b.Put([]byte(si.rec.ID()), data); err != nil {
				return err
			}
		}
	}
	if err := pruneRevocations(tx, p.next.updated); err != nil {
		return err
	}
	if len(p.putR) > 0 {
		b, err := tx.CreateBucketIfNotExists(bucketRevocations)
		if err != nil {
			return err
		}
		for _, r := range p.putR {
			if err := putJSON(b, r.JTI, r); err != nil {
				return err
			}
		}
	}
	return nil
}
