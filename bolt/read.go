package bolt

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/keygate/keygate/credentials"
)

// Tenants and clients are read from the published in-memory state. API
// keys are read from the file (only the index of them is in memory), with
// s.mu held so that the records and the index are of one revision; their
// last use is read from the usage bucket and the in-memory pending use.

// Tenant returns the tenant slug. Returns not_found.
func (s *Store) Tenant(ctx context.Context, slug string) (*credentials.Tenant, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	t := s.cur.Load().tenants[slug]
	if t == nil {
		return nil, notFound("tenant", slug)
	}
	c := *t
	return &c, nil
}

// Tenants returns all tenants ordered by slug.
func (s *Store) Tenants(ctx context.Context) ([]credentials.Tenant, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	st := s.cur.Load()
	out := make([]credentials.Tenant, 0, len(st.tenants))
	for _, slug := range slices.Sorted(maps.Keys(st.tenants)) {
		out = append(out, *st.tenants[slug])
	}
	return out, nil
}

// Client returns client id. Returns not_found.
func (s *Store) Client(ctx context.Context, id string) (*credentials.Client, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	c := s.cur.Load().clients[id]
	if c == nil {
		return nil, notFound("client", id)
	}
	cp := copyClient(c)
	return &cp, nil
}

// Clients returns the clients of tenant ("" for all), ordered by ID.
func (s *Store) Clients(ctx context.Context, tenant string) ([]credentials.Client, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	st := s.cur.Load()
	var out []credentials.Client
	for _, c := range st.clients {
		if tenant == "" || c.Tenant == tenant {
			out = append(out, copyClient(c))
		}
	}
	slices.SortFunc(out, func(a, b credentials.Client) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// APIKey returns key id with its last use. Returns not_found.
func (s *Store) APIKey(ctx context.Context, id string) (*credentials.APIKey, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []credentials.APIKey
	err = s.view(func(tx *bbolt.Tx) error {
		k, err := recordReader(tx)(id)
		if k != nil {
			out = append(out, *k)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, notFound("API key", id)
	}
	if err := s.mergeUsage(s.cur.Load(), out); err != nil {
		return nil, err
	}
	return &out[0], nil
}

// APIKeys returns the keys of client ("" for all) with their last use,
// ordered by ID.
func (s *Store) APIKeys(ctx context.Context, clientID string) ([]credentials.APIKey, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st := s.cur.Load()
	var out []credentials.APIKey
	err = s.view(func(tx *bbolt.Tx) error {
		if clientID == "" {
			var err error
			out, err = allKeys(tx)
			return err
		}
		var ids []string
		st.idx.EachKey(func(_ *[32]byte, e *credentials.KeyEntry) bool {
			if e.Client.ID == clientID {
				ids = append(ids, e.Identity.KeyID)
			}
			return true
		})
		get := recordReader(tx)
		for _, id := range ids {
			k, err := get(id)
			if err != nil {
				return err
			}
			if k != nil {
				out = append(out, *k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b credentials.APIKey) int { return cmp.Compare(a.ID, b.ID) })
	if err := s.mergeUsage(st, out); err != nil {
		return nil, err
	}
	return out, nil
}

// allKeys decodes every API-key record of tx, ordered by ID.
func allKeys(tx *bbolt.Tx) ([]credentials.APIKey, error) {
	b := tx.Bucket(bucketAPIKeys)
	out := make([]credentials.APIKey, 0, b.Stats().KeyN)
	err := b.ForEach(func(k, v []byte) error {
		out = append(out, credentials.APIKey{})
		if err := decodeKey(v, &out[len(out)-1]); err != nil {
			return credentials.Internal(fmt.Errorf("API key %q: %w", k, err))
		}
		return nil
	})
	return out, err
}

// mergeUsage sets LastUsedAt/LastUsedIP of keys: the use recorded in
// memory and not yet flushed wins over the flushed one in the usage bucket.
func (s *Store) mergeUsage(st *state, keys []credentials.APIKey) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		for i := range keys {
			k := &keys[i]
			if v := b.Get([]byte(k.ID)); v != nil {
				var u usageRecord
				if err := json.Unmarshal(v, &u); err != nil {
					return err
				}
				t := u.LastUsedAt
				k.LastUsedAt, k.LastUsedIP = &t, u.LastUsedIP
			}
			sum := k.Sum()
			if e := st.idx.Key(&sum); e != nil && e.Identity.KeyID == k.ID {
				if last, ip, ok := e.Usage.Pending(); ok {
					k.LastUsedAt = &last
					k.LastUsedIP = ""
					if ip.IsValid() {
						k.LastUsedIP = ip.String()
					}
				}
			}
		}
		return nil
	})
	return err
}

// view runs fn in a read transaction, mapping a closed store or an I/O
// error to unavailable and anything else to internal.
func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	if err := s.db.View(fn); err != nil {
		if _, ok := err.(*credentials.Error); ok {
			return err
		}
		if e := writeError(s.path, err); credentials.ErrorCode(e) == credentials.EUnavailable {
			return &credentials.Error{Code: credentials.EUnavailable, Message: "the credential store cannot be read", Err: err}
		}
		return credentials.Internal(fmt.Errorf("store %s: %w", s.path, err))
	}
	return nil
}

// Export returns the whole state as a snapshot document: tenants by slug,
// clients by ID with their API keys (digests, no last use) nested and
// ordered by ID, and their HMAC keys (without secrets: applied, they keep
// the stored ones) nested and ordered by ID when they have any (nil when
// none), issuers by tenant and name without secrets (an oct key without k
// keeps its stored secret when applied), and the revocations that have
// not expired, by jti. Applied with Snapshot.Changes(true) it changes
// nothing.
func (s *Store) Export(ctx context.Context) (*credentials.Snapshot, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st := s.cur.Load()
	now := s.now()
	var keys []credentials.APIKey
	var revs []credentials.Revocation
	err = s.view(func(tx *bbolt.Tx) error {
		var err error
		if keys, err = allKeys(tx); err != nil {
			return err
		}
		if revs, err = readRevocations(tx, now); err != nil {
			return credentials.Internal(err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	snap := &credentials.Snapshot{}
	for _, slug := range slices.Sorted(maps.Keys(st.tenants)) {
		snap.Tenants = append(snap.Tenants, *st.tenants[slug])
	}
	byClient := make(map[string][]credentials.APIKey, len(st.clients))
	for _, k := range keys {
		c := k
		c.ClientID = ""
		byClient[k.ClientID] = append(byClient[k.ClientID], c)
	}
	hmacByClient := hmacKeysByClient(st)
	for _, id := range slices.Sorted(maps.Keys(st.clients)) {
		keys := byClient[id]
		if keys == nil {
			keys = []credentials.APIKey{}
		}
		slices.SortFunc(keys, func(a, b credentials.APIKey) int { return cmp.Compare(a.ID, b.ID) })
		sc := credentials.SnapshotClient{Client: copyClient(st.clients[id]), APIKeys: &keys}
		if hk := hmacByClient[id]; len(hk) > 0 {
			sc.HMACKeys = &hk
		}
		snap.Clients = append(snap.Clients, sc)
	}
	snap.Issuers = issuersOf(st, "")
	snap.Revocations = revs
	return snap, nil
}

// Status returns the revision, the record counts, the active counts of
// the index and the time of the last change.
func (s *Store) Status(ctx context.Context) (credentials.Status, error) {
	if err := ctxErr(ctx); err != nil {
		return credentials.Status{}, err
	}
	st := s.cur.Load()
	return credentials.Status{
		Revision: st.rev,
		Counts: credentials.Counts{
			Tenants:  len(st.tenants),
			Clients:  len(st.clients),
			APIKeys:  st.idx.Len(),
			HMACKeys: len(st.hmacKeys),
			Issuers:  len(st.issuers),
		},
		Active:  st.idx.Counts,
		Updated: st.updated,
	}, nil
}

// Backup writes a consistent copy of the bbolt file to w (one read
// transaction) and returns the number of bytes written.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctxErr(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		if e := ctxErr(ctx); e != nil {
			return n, e
		}
		return n, err
	}
	return n, nil
}

// ctxWriter stops a backup when its context is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func copyClient(c *credentials.Client) credentials.Client {
	cp := *c
	cp.Roles, cp.Scopes, cp.AllowedCIDRs = cloneStrings(c.Roles), cloneStrings(c.Scopes), cloneStrings(c.AllowedCIDRs)
	return cp
}

func copyKey(k *credentials.APIKey) credentials.APIKey {
	cp := *k
	cp.Scopes = cloneStrings(k.Scopes)
	if k.ExpiresAt != nil {
		e := *k.ExpiresAt
		cp.ExpiresAt = &e
	}
	return cp
}

// usage flushing

// FlushUsage writes the last uses recorded since the previous flush in one
// transaction. It changes neither the revision nor the audit log.
func (s *Store) FlushUsage(ctx context.Context) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.flushLocked()
}

// flushLocked is FlushUsage; the caller holds s.mu.
func (s *Store) flushLocked() error {
	idx := s.cur.Load().idx
	type pending struct {
		id   string
		u    *credentials.Usage
		last time.Time
		rec  []byte
	}
	var list []pending
	idx.EachUsage(func(id string, u *credentials.Usage) {
		last, ip, ok := u.Pending()
		if !ok {
			return
		}
		r := usageRecord{LastUsedAt: last}
		if ip.IsValid() {
			r.LastUsedIP = ip.String()
		}
		data, _ := json.Marshal(r)
		list = append(list, pending{id, u, last, data})
	})
	if len(list) == 0 {
		return nil
	}
	slices.SortFunc(list, func(a, b pending) int { return cmp.Compare(a.id, b.id) })
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		for _, p := range list {
			if err := b.Put([]byte(p.id), p.rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return writeError(s.path, err)
	}
	for _, p := range list {
		p.u.MarkFlushed(p.last)
	}
	return nil
}

func (s *Store) flushLoop(every time.Duration) {
	defer s.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.FlushUsage(context.Background()); err != nil {
				s.log.Warn("last-used flush failed", zap.Error(err))
			}
		}
	}
}
