package bolt

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keygate/keygate/credentials"
)

// storedIssuer is an issuer as the store keeps it in memory: the record
// with the plaintext secrets of its oct keys (which the index needs) and
// the sealed form of each secret as it is on disk.
type storedIssuer struct {
	rec    credentials.Issuer // oct keys carry K (canonical base64url)
	sealed map[int][]byte     // index in rec.JWKS.Keys → nonce || ciphertext
}

// issuerRecord is the value of the issuers bucket. The issuer is stored
// without secrets (K of every key is empty); the secret of the oct key at
// index i of jwks.keys is sealed (seal.go) under the master key, bound to
// the issuer's ID and the key's kid, and stored in Sealed under "i".
type issuerRecord struct {
	Issuer credentials.Issuer `json:"issuer"`
	Sealed map[string][]byte  `json:"sealed,omitempty"`
}

// marshal returns the record of si as written to the issuers bucket.
func (si *storedIssuer) marshal() ([]byte, error) {
	r := issuerRecord{Issuer: si.rec.Redacted()}
	if len(si.sealed) > 0 {
		r.Sealed = make(map[string][]byte, len(si.sealed))
		for i, b := range si.sealed {
			r.Sealed[strconv.Itoa(i)] = b
		}
	}
	return json.Marshal(&r)
}

// decodeIssuer decodes the issuer record v stored under key k and
// decrypts its secrets. It returns ErrMasterKeyRequired when the record
// holds a sealed secret and seal is nil; any other error describes a
// record that is not what Apply writes (errors never hold a secret).
func decodeIssuer(k, v []byte, tenants map[string]*credentials.Tenant, seal *sealer) (*storedIssuer, error) {
	var r issuerRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("issuer %q: %v", k, err)
	}
	is := r.Issuer
	id := is.ID()
	if id != string(k) || !credentials.ValidSlug(is.Tenant) || !credentials.ValidIssuerName(is.Name) {
		return nil, fmt.Errorf("issuer record %q has ID %q", k, id)
	}
	t := tenants[is.Tenant]
	if t == nil {
		return nil, fmt.Errorf("issuer %q names tenant %q, which does not exist", id, is.Tenant)
	}
	is.Tenant = t.Slug // share the string
	si := &storedIssuer{rec: is}
	n := 0
	if is.JWKS != nil {
		for i := range is.JWKS.Keys {
			key := &is.JWKS.Keys[i]
			if key.K != "" {
				return nil, fmt.Errorf("issuer %q: jwks.keys[%d] holds a plaintext secret, which is never stored", id, i)
			}
			sealed, ok := r.Sealed[strconv.Itoa(i)]
			if key.Kty != "oct" {
				if ok {
					return nil, fmt.Errorf("issuer %q: jwks.keys[%d] is a %q key and has a sealed secret", id, i, key.Kty)
				}
				continue
			}
			if !ok {
				return nil, fmt.Errorf("issuer %q: oct key jwks.keys[%d] has no sealed secret", id, i)
			}
			n++
			plain, err := openSecret(seal, sealed, issuerKeyAD(id, key.Kid),
				fmt.Sprintf("issuer %q: the secret of jwks.keys[%d] (kid %q)", id, i, key.Kid))
			if err != nil {
				return nil, err
			}
			key.K = base64.RawURLEncoding.EncodeToString(plain)
			if si.sealed == nil {
				si.sealed = make(map[int][]byte)
			}
			si.sealed[i] = sealed // json.Unmarshal allocated it
		}
	}
	if len(r.Sealed) != n {
		return nil, fmt.Errorf("issuer %q: sealed secrets for keys that are not oct keys", id)
	}
	return si, nil
}

// readIssuers decodes the issuers bucket of tx (absent in stores written
// before issuers existed: no issuers).
func readIssuers(tx *bbolt.Tx, tenants map[string]*credentials.Tenant, seal *sealer) (map[string]*storedIssuer, error) {
	return readRecords(tx, bucketIssuers, issuerID, func(k, v []byte) (*storedIssuer, error) {
		return decodeIssuer(k, v, tenants, seal)
	})
}

// readRecords decodes every record of bucket name of tx with decode and
// returns them by id. An absent bucket (a file that predates it) holds
// none. The first error of decode is returned as it is.
func readRecords[T any](tx *bbolt.Tx, name []byte, id func(T) string, decode func(k, v []byte) (T, error)) (map[string]T, error) {
	out := make(map[string]T)
	b := tx.Bucket(name)
	if b == nil {
		return out, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		r, err := decode(k, v)
		if err != nil {
			return err
		}
		out[id(r)] = r
		return nil
	})
	return out, err
}

// issuerID returns the ID ("tenant/name") of si.
func issuerID(si *storedIssuer) string { return si.rec.ID() }

// plannedDeletes checks the IDs that ch deletes from one kind of record
// (list as in the field "delete.<list>[i]", kind as in messages): each
// must be stored in old and not upserted in up. It returns them as a set.
func plannedDeletes[V comparable](ids []string, old, up map[string]V, list, kind string) (map[string]bool, error) {
	var none V
	gone := map[string]bool{}
	for i, id := range ids {
		if old[id] == none {
			return nil, notFound(kind, id)
		}
		if up[id] != none {
			return nil, credentials.FieldError(fmt.Sprintf("delete.%s[%d]", list, i), "%s %q is both upserted and deleted", kind, id)
		}
		gone[id] = true
	}
	return gone, nil
}

// withChanges returns a copy of old without the records gone and with
// the records put (by id).
func withChanges[T any](old map[string]T, gone []string, put []T, id func(T) string) map[string]T {
	next := maps.Clone(old)
	for _, g := range gone {
		delete(next, g)
	}
	for _, r := range put {
		next[id(r)] = r
	}
	return next
}

// publicIssuer returns a copy of is without secrets that shares nothing
// with is.
func publicIssuer(is *credentials.Issuer) credentials.Issuer {
	c := is.Redacted()
	c.Audiences = cloneStrings(is.Audiences)
	c.Algorithms = slices.Clone(is.Algorithms)
	c.RequiredClaims = maps.Clone(is.RequiredClaims)
	return c
}

// issuerCopy returns a deep copy of is as it reads back from its JSON
// encoding (so an issuer compares equal to itself reloaded from the file:
// numbers in required_claims become float64, empty lists nil).
func issuerCopy(is *credentials.Issuer) (credentials.Issuer, error) {
	var c credentials.Issuer
	data, err := json.Marshal(is)
	if err != nil {
		return c, err
	}
	err = json.Unmarshal(data, &c)
	return c, err
}

// sameIssuer reports whether a and b have the same fields and secrets,
// apart from the server-managed times. Secrets are compared in constant
// time (hmac.Equal over the encodings).
func sameIssuer(a, b *credentials.Issuer) bool {
	ac, bc := *a, *b
	ac.CreatedAt, ac.UpdatedAt, bc.CreatedAt, bc.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	ad, err1 := json.Marshal(&ac)
	bd, err2 := json.Marshal(&bc)
	return err1 == nil && err2 == nil && hmac.Equal(ad, bd)
}

// octSecret decodes the K of an oct key (validated by Issuer.Validate).
func octSecret(k *credentials.JWK) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(k.K, "="))
}

// planIssuers validates the issuer upserts and deletes of ch against
// p.old, resolves oct keys given without k to the stored secrets, seals
// new secrets, and sets p.putI, p.goneI and the issuers of p.next. It
// returns the upserted issuers (changed or not) by ID, whose tenants
// checkIntegrity checks.
func (p *plan) planIssuers(ch *credentials.Changes, now time.Time, seal *sealer) (map[string]*storedIssuer, error) {
	old := p.old
	upI := make(map[string]*storedIssuer, len(ch.Issuers))
	for i := range ch.Issuers {
		in := ch.Issuers[i] // a shallow copy: Normalize sets defaults
		f := field("issuers", in.ID(), i, credentials.ValidSlug(in.Tenant) && credentials.ValidIssuerName(in.Name))
		if err := in.Normalize(f, true); err != nil {
			return nil, err
		}
		is, err := issuerCopy(&in)
		if err != nil {
			return nil, credentials.FieldError(f, "cannot be stored: %v", err)
		}
		id := is.ID()
		if upI[id] != nil {
			return nil, credentials.FieldError(f+".name", "issuer %q is given twice", id)
		}
		is.CreatedAt, is.UpdatedAt = time.Time{}, time.Time{}
		si := &storedIssuer{rec: is}
		if is.JWKS != nil {
			seen := map[string]int{} // kid → oct keys with it so far
			for j := range is.JWKS.Keys {
				k := &is.JWKS.Keys[j]
				if k.Kty != "oct" {
					continue
				}
				kf := fmt.Sprintf("%s.jwks.keys[%d].k", f, j)
				if seal == nil {
					return nil, credentials.FieldError(kf, "a master key is required to store HS* keys (start keygate with --master-key-file)")
				}
				nth := seen[k.Kid]
				seen[k.Kid]++
				if k.K != "" {
					secret, err := octSecret(k)
					if err != nil {
						return nil, credentials.FieldError(kf, "must be base64url")
					}
					k.K = base64.RawURLEncoding.EncodeToString(secret)
					continue
				}
				// No k: the nth stored oct key of this issuer with this kid
				// keeps its secret (so an exported issuer applies unchanged,
				// even with several keys of one kid).
				from := storedOctKey(old.issuers[id], k.Kid, nth)
				if from < 0 {
					return nil, credentials.FieldError(kf, "required: no stored key of this issuer has kid %q", k.Kid)
				}
				o := old.issuers[id]
				k.K = o.rec.JWKS.Keys[from].K
				if si.sealed == nil {
					si.sealed = make(map[int][]byte)
				}
				si.sealed[j] = o.sealed[from]
			}
		}
		if err := si.rec.Validate(f, false); err != nil { // the kept secrets fit too
			return nil, err
		}
		upI[id] = si
	}

	goneI, err := plannedDeletes(ch.DeleteIssuers, old.issuers, upI, "issuers", "issuer")
	if err != nil {
		return nil, err
	}
	if ch.Replace {
		for id := range old.issuers {
			if upI[id] == nil {
				goneI[id] = true
			}
		}
	}

	for _, id := range slices.Sorted(maps.Keys(upI)) {
		si := upI[id]
		if o := old.issuers[id]; o != nil {
			if sameIssuer(&o.rec, &si.rec) {
				continue
			}
			si.rec.CreatedAt = o.rec.CreatedAt
		} else {
			si.rec.CreatedAt = now
		}
		si.rec.UpdatedAt = now
		if si.rec.JWKS != nil {
			for j := range si.rec.JWKS.Keys {
				k := &si.rec.JWKS.Keys[j]
				if k.Kty != "oct" || si.sealed[j] != nil {
					continue
				}
				secret, err := octSecret(k)
				if err != nil {
					return nil, credentials.Internal(fmt.Errorf("issuer %q: oct key %d: %w", id, j, err))
				}
				sealed, err := p.sealNew(seal, secret, issuerKeyAD(id, k.Kid), "issuer", id)
				if err != nil {
					return nil, err
				}
				if si.sealed == nil {
					si.sealed = make(map[int][]byte)
				}
				si.sealed[j] = sealed
			}
		}
		p.putI = append(p.putI, si)
	}
	p.goneI = sortedKeys(goneI)
	if len(p.putI)+len(p.goneI) > 0 {
		p.next.issuers = withChanges(old.issuers, p.goneI, p.putI, issuerID)
	}
	return upI, nil
}

// sealNew seals secret (bound to ad) for the record kind id of p, and
// notes in p that it holds a newly sealed secret. Its error is internal.
func (p *plan) sealNew(seal *sealer, secret, ad []byte, kind, id string) ([]byte, error) {
	sealed, err := seal.seal(secret, ad)
	if err != nil {
		return nil, credentials.Internal(fmt.Errorf("%s %q: seal secret: %w", kind, id, err))
	}
	p.sealedNew = true
	return sealed, nil
}

// storedOctKey returns the index of the nth oct key with kid of si, or -1.
func storedOctKey(si *storedIssuer, kid string, nth int) int {
	if si == nil || si.rec.JWKS == nil {
		return -1
	}
	for i, k := range si.rec.JWKS.Keys {
		if k.Kty == "oct" && k.Kid == kid {
			if nth == 0 {
				return i
			}
			nth--
		}
	}
	return -1
}

// Revocations.

// expired reports whether r no longer denies anything at now.
func expired(r *credentials.Revocation, now time.Time) bool { return r.ExpiresAt.Before(now) }

// decodeRevocation decodes the revocation record v stored under key k.
func decodeRevocation(k, v []byte, r *credentials.Revocation) error {
	if err := json.Unmarshal(v, r); err != nil {
		return fmt.Errorf("revocation %q: %v", k, err)
	}
	if r.JTI != string(k) || r.ExpiresAt.IsZero() {
		return fmt.Errorf("revocation record %q has jti %q and expiry %v", k, r.JTI, r.ExpiresAt)
	}
	return nil
}

// readRevocations decodes the revocations bucket of tx (absent in stores
// written before revocations existed) and returns those that have not
// expired at now, ordered by jti. A record that does not decode is an
// error (plain: the caller decides its code).
func readRevocations(tx *bbolt.Tx, now time.Time) ([]credentials.Revocation, error) {
	b := tx.Bucket(bucketRevocations)
	if b == nil {
		return nil, nil
	}
	var out []credentials.Revocation
	err := b.ForEach(func(k, v []byte) error {
		var r credentials.Revocation
		if err := decodeRevocation(k, v, &r); err != nil {
			return err
		}
		if !expired(&r, now) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// getRevocation returns the stored revocation jti (nil: none).
func getRevocation(tx *bbolt.Tx, jti string) (*credentials.Revocation, error) {
	b := tx.Bucket(bucketRevocations)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(jti))
	if v == nil {
		return nil, nil
	}
	r := new(credentials.Revocation)
	if err := decodeRevocation([]byte(jti), v, r); err != nil {
		return nil, credentials.Internal(err)
	}
	return r, nil
}

// planRevocations adds the revocations of ch to p.putR: new ones, and
// stored ones whose expiry moves later. A revocation that has already
// expired at now changes nothing (it would be pruned at once).
func (p *plan) planRevocations(ch *credentials.Changes, now time.Time, tx *bbolt.Tx) error {
	seen := make(map[string]bool, len(ch.Revocations))
	for i := range ch.Revocations {
		r := ch.Revocations[i]
		f := fmt.Sprintf("revocations[%d]", i)
		if err := r.Validate(f); err != nil {
			return err
		}
		if seen[r.JTI] {
			return credentials.FieldError(f+".jti", "jti %q is given twice", r.JTI)
		}
		seen[r.JTI] = true
		r.ExpiresAt = r.ExpiresAt.UTC().Round(0)
		if expired(&r, now) {
			continue
		}
		o, err := getRevocation(tx, r.JTI)
		if err != nil {
			return err
		}
		if o != nil && !expired(o, now) {
			if !r.ExpiresAt.After(o.ExpiresAt) {
				continue
			}
			r.CreatedAt = o.CreatedAt
		} else {
			r.CreatedAt = now
		}
		p.putR = append(p.putR, &r)
	}
	slices.SortFunc(p.putR, func(a, b *credentials.Revocation) int { return cmp.Compare(a.JTI, b.JTI) })
	if ch.Replace {
		// The rebuilt index needs every revocation, stored and new.
		stored, err := readRevocations(tx, now)
		if err != nil {
			return credentials.Internal(err)
		}
		p.allR = stored
	}
	return nil
}

// pruneRevocations deletes the revocations of tx that expired before now.
func pruneRevocations(tx *bbolt.Tx, now time.Time) error {
	b := tx.Bucket(bucketRevocations)
	if b == nil {
		return nil
	}
	var gone [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var r struct {
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("revocation %q: %v", k, err)
		}
		if r.ExpiresAt.Before(now) {
			gone = append(gone, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Reads.

// Issuer returns issuer name of tenant without secrets (the K of its oct
// keys is empty). Returns not_found.
func (s *Store) Issuer(ctx context.Context, tenant, name string) (*credentials.Issuer, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	id := tenant + "/" + name
	si := s.cur.Load().issuers[id]
	if si == nil {
		return nil, notFound("issuer", id)
	}
	is := publicIssuer(&si.rec)
	return &is, nil
}

// Issuers returns the issuers of tenant ("" for all) without secrets,
// ordered by tenant and name.
func (s *Store) Issuers(ctx context.Context, tenant string) ([]credentials.Issuer, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	return issuersOf(s.cur.Load(), tenant), nil
}

func issuersOf(st *state, tenant string) []credentials.Issuer {
	var out []credentials.Issuer
	for _, si := range st.issuers {
		if tenant == "" || si.rec.Tenant == tenant {
			out = append(out, publicIssuer(&si.rec))
		}
	}
	slices.SortFunc(out, func(a, b credentials.Issuer) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Revocations returns the revocations that have not expired, ordered by
// jti. It reads them from the file in a read transaction (they are not
// kept in memory).
func (s *Store) Revocations(ctx context.Context) ([]credentials.Revocation, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	var out []credentials.Revocation
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		out, err = readRevocations(tx, now)
		if err != nil {
			return credentials.Internal(err)
		}
		return nil
	})
	return out, err
}
