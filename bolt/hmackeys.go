package bolt

import (
	"cmp"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keygate/keygate/credentials"
)

// storedHMACKey is an HMAC key as the store keeps it in memory: the record
// with its plaintext secret (Secret: canonical standard base64, which the
// index needs) and the sealed form of the secret as it is on disk.
type storedHMACKey struct {
	rec    credentials.HMACKey
	sealed []byte // nonce || ciphertext, bound to the key's ID
}

// hmacKeyRecord is the value of the hmackeys bucket: the key without its
// secret, and the secret sealed (seal.go) under the master key, bound to
// the key's ID (hmacKeyAD).
type hmacKeyRecord struct {
	Key    credentials.HMACKey `json:"key"`
	Sealed []byte              `json:"sealed"`
}

// marshal returns the record of sk as written to the hmackeys bucket.
func (sk *storedHMACKey) marshal() ([]byte, error) {
	return json.Marshal(&hmacKeyRecord{Key: sk.rec.Redacted(), Sealed: sk.sealed})
}

// decodeHMACKey decodes the HMAC key record v stored under key k and
// decrypts its secret. It returns ErrMasterKeyRequired when seal is nil;
// any other error describes a record that is not what Apply writes, and
// names the key (errors never hold a secret).
func decodeHMACKey(k, v []byte, clients map[string]*credentials.Client, seal *sealer) (*storedHMACKey, error) {
	var r hmacKeyRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("HMAC key %q: %v", k, err)
	}
	key := r.Key
	if key.ID != string(k) {
		return nil, fmt.Errorf("HMAC key record %q has ID %q", k, key.ID)
	}
	if key.Secret != "" {
		return nil, fmt.Errorf("HMAC key %q holds a plaintext secret, which is never stored", key.ID)
	}
	if err := key.Normalize("", true); err != nil {
		return nil, fmt.Errorf("HMAC key %q: %s", key.ID, credentials.ErrorMessage(err))
	}
	c := clients[key.ClientID]
	if c == nil {
		return nil, fmt.Errorf("HMAC key %q names client %q, which does not exist", key.ID, key.ClientID)
	}
	key.ClientID = c.ID // share the string
	if len(r.Sealed) == 0 {
		return nil, fmt.Errorf("HMAC key %q has no sealed secret", key.ID)
	}
	plain, err := openSecret(seal, r.Sealed, hmacKeyAD(key.ID), fmt.Sprintf("HMAC key %q: the secret", key.ID))
	if err != nil {
		return nil, err
	}
	key.Secret = base64.StdEncoding.EncodeToString(plain)
	clear(plain)
	return &storedHMACKey{rec: key, sealed: r.Sealed}, nil
}

// readHMACKeys decodes the hmackeys bucket of tx (absent in stores
// written before HMAC keys existed: none).
func readHMACKeys(tx *bbolt.Tx, clients map[string]*credentials.Client, seal *sealer) (map[string]*storedHMACKey, error) {
	return readRecords(tx, bucketHMACKeys, hmacKeyID, func(k, v []byte) (*storedHMACKey, error) {
		return decodeHMACKey(k, v, clients, seal)
	})
}

// hmacKeyID returns the ID of sk.
func hmacKeyID(sk *storedHMACKey) string { return sk.rec.ID }

// publicHMACKey returns a copy of k without its secret that shares
// nothing with k.
func publicHMACKey(k *credentials.HMACKey) credentials.HMACKey {
	c := k.Redacted()
	c.Scopes = cloneStrings(k.Scopes)
	if k.ExpiresAt != nil {
		e := *k.ExpiresAt
		c.ExpiresAt = &e
	}
	return c
}

// sameHMACKey reports whether a and b have the same fields and secret,
// apart from the server-managed times. The secrets (canonical base64)
// are compared in constant time.
func sameHMACKey(a, b *credentials.HMACKey) bool {
	return a.ClientID == b.ClientID && a.Name == b.Name && a.Scheme == b.Scheme &&
		slices.Equal(a.Scopes, b.Scopes) && a.Disabled == b.Disabled &&
		(a.ExpiresAt == nil) == (b.ExpiresAt == nil) && (a.ExpiresAt == nil || a.ExpiresAt.Equal(*b.ExpiresAt)) &&
		hmac.Equal([]byte(a.Secret), []byte(b.Secret))
}

// errHMACMasterKey is the message of an HMAC upsert on a store without a
// master key.
const errHMACMasterKey = "a master key is required to store HMAC keys (start keygate with --master-key-file)"

// planHMACKeys validates the HMAC-key upserts and deletes of ch against
// p.old, resolves keys given without a secret to the stored secret, seals
// new secrets, and sets p.putH, p.goneH and the HMAC keys of p.next.
// goneC are the clients the plan deletes (explicitly or by Replace): their
// keys go too, unless upserted (checkHMACIntegrity then refuses them).
// It returns the upserted keys (changed or not) by ID.
func (p *plan) planHMACKeys(ch *credentials.Changes, now time.Time, seal *sealer, goneC map[string]bool) (map[string]*storedHMACKey, error) {
	old := p.old
	upH := make(map[string]*storedHMACKey, len(ch.HMACKeys))
	for i := range ch.HMACKeys {
		k := ch.HMACKeys[i] // a shallow copy: Normalize sets defaults
		f := "hmackeys[" + k.ID + "]"
		if err := k.Normalize(f, true); err != nil {
			if credentials.ValidateID(credentials.HMACKeyPrefix, k.ID, "") != nil {
				k = ch.HMACKeys[i]
				return nil, k.Normalize(field("hmackeys", k.ID, i, false), true)
			}
			return nil, err
		}
		if upH[k.ID] != nil {
			return nil, credentials.FieldError(f+".id", "HMAC key %q is given twice", k.ID)
		}
		if seal == nil {
			return nil, credentials.FieldError(f+".secret", errHMACMasterKey)
		}
		o := old.hmacKeys[k.ID]
		if k.ClientID == "" {
			if o == nil {
				return nil, credentials.FieldError(f+".client_id", "the new HMAC key %q needs a client", k.ID)
			}
			k.ClientID = o.rec.ClientID
		}
		sk := &storedHMACKey{}
		if k.Secret != "" {
			// Canonical form (Normalize accepted it as standard base64).
			secret := k.SecretBytes()
			k.Secret = base64.StdEncoding.EncodeToString(secret)
			clear(secret)
			if o != nil && hmac.Equal([]byte(k.Secret), []byte(o.rec.Secret)) {
				sk.sealed = o.sealed
			}
		} else {
			if o == nil {
				return nil, credentials.FieldError(f+".secret", "required: a new HMAC key needs a secret")
			}
			k.Secret, sk.sealed = o.rec.Secret, o.sealed
		}
		k.Scopes = cloneStrings(k.Scopes)
		if k.ExpiresAt != nil {
			e := k.ExpiresAt.UTC().Round(0)
			k.ExpiresAt = &e
		}
		k.CreatedAt, k.UpdatedAt = time.Time{}, time.Time{}
		sk.rec = k
		upH[k.ID] = sk
	}
	if ch.Create {
		for _, id := range slices.Sorted(maps.Keys(upH)) {
			if old.hmacKeys[id] != nil {
				return nil, alreadyExists("HMAC key", id)
			}
		}
	}

	goneH, err := plannedDeletes(ch.DeleteHMACKeys, old.hmacKeys, upH, "hmackeys", "HMAC key")
	if err != nil {
		return nil, err
	}
	if ch.Replace || len(goneC) > 0 || len(ch.ReplaceHMACKeysOf) > 0 {
		replaceOf := make(map[string]bool, len(ch.ReplaceHMACKeysOf))
		for _, id := range ch.ReplaceHMACKeysOf {
			replaceOf[id] = true
		}
		for id, sk := range old.hmacKeys {
			if c := sk.rec.ClientID; upH[id] == nil && (ch.Replace || goneC[c] || replaceOf[c]) {
				goneH[id] = true
			}
		}
	}

	for _, id := range slices.Sorted(maps.Keys(upH)) {
		sk := upH[id]
		if o := old.hmacKeys[id]; o != nil {
			if sameHMACKey(&o.rec, &sk.rec) {
				continue
			}
			sk.rec.CreatedAt = o.rec.CreatedAt
		} else {
			sk.rec.CreatedAt = now
		}
		sk.rec.UpdatedAt = now
		if sk.sealed == nil {
			secret := sk.rec.SecretBytes()
			sealed, err := p.sealNew(seal, secret, hmacKeyAD(id), "HMAC key", id)
			clear(secret)
			if err != nil {
				return nil, err
			}
			sk.sealed = sealed
		}
		p.putH = append(p.putH, sk)
	}
	p.goneH = sortedKeys(goneH)
	if len(p.putH)+len(p.goneH) > 0 {
		p.next.hmacKeys = withChanges(old.hmacKeys, p.goneH, p.putH, hmacKeyID)
	}
	return upH, nil
}

// checkHMACIntegrity verifies the HMAC keys of the new state: the client
// of every upserted key exists, and a tenant has at most one enabled
// (not disabled) timestamp-body key across its clients, since such keys
// are chosen by X-Tenant-ID. Expiry and the client's or tenant's disabled
// flag do not count: enabling a client, or the clock, can never make two
// keys eligible at once. The tenant rule is checked when keys or clients
// change (a client may move to another tenant with its keys).
func (p *plan) checkHMACIntegrity(upH map[string]*storedHMACKey) error {
	next := p.next
	for _, id := range slices.Sorted(maps.Keys(upH)) {
		if c := upH[id].rec.ClientID; next.clients[c] == nil {
			return credentials.FieldError("hmackeys["+id+"].client_id", "client %q of HMAC key %q does not exist", c, id)
		}
	}
	if len(p.goneC) > 0 { // the cascade missed nothing
		for _, id := range slices.Sorted(maps.Keys(next.hmacKeys)) {
			if c := next.hmacKeys[id].rec.ClientID; next.clients[c] == nil {
				return credentials.FieldError("hmackeys["+id+"].client_id", "client %q of HMAC key %q does not exist", c, id)
			}
		}
	}
	if len(p.putH)+len(p.putC) == 0 {
		return nil
	}
	byTenant := map[string][]string{}
	for id, sk := range next.hmacKeys {
		if sk.rec.Scheme == credentials.SchemeTimestampBody && !sk.rec.Disabled {
			t := next.clients[sk.rec.ClientID].Tenant
			byTenant[t] = append(byTenant[t], id)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(byTenant)) {
		ids := byTenant[t]
		if len(ids) < 2 {
			continue
		}
		slices.Sort(ids)
		// Blame a key this batch upserted, and name one that was there.
		blamed := ids[len(ids)-1]
		for _, id := range ids {
			if upH[id] != nil {
				blamed = id
				break
			}
		}
		other := ids[0]
		if other == blamed {
			other = ids[1]
		}
		return credentials.FieldError("hmackeys["+blamed+"].scheme",
			"tenant %q already has an enabled timestamp-body HMAC key (%s): a tenant has at most one (disable or delete it, or use %s)",
			t, other, credentials.SchemeRFC9421)
	}
	return nil
}

// writeHMACKeys stores the HMAC-key changes of p in tx. The bucket is
// created if the file predates it.
func (p *plan) writeHMACKeys(tx *bbolt.Tx) error {
	if len(p.putH)+len(p.goneH) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketHMACKeys)
	if err != nil {
		return err
	}
	if err := deleteAll(b, p.goneH); err != nil {
		return err
	}
	for _, sk := range p.putH {
		data, err := sk.marshal()
		if err != nil {
			return err
		}
		if err := b.Put([]byte(sk.rec.ID), data); err != nil {
			return err
		}
	}
	return nil
}

// Reads.

// HMACKey returns HMAC key id without its secret. Returns not_found.
func (s *Store) HMACKey(ctx context.Context, id string) (*credentials.HMACKey, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	sk := s.cur.Load().hmacKeys[id]
	if sk == nil {
		return nil, notFound("HMAC key", id)
	}
	k := publicHMACKey(&sk.rec)
	return &k, nil
}

// HMACKeys returns the HMAC keys of client ("" for all) without their
// secrets, ordered by ID. An unknown client has none.
func (s *Store) HMACKeys(ctx context.Context, clientID string) ([]credentials.HMACKey, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	return hmacKeysOf(s.cur.Load(), clientID), nil
}

func hmacKeysOf(st *state, clientID string) []credentials.HMACKey {
	var out []credentials.HMACKey
	for _, sk := range st.hmacKeys {
		if clientID == "" || sk.rec.ClientID == clientID {
			out = append(out, publicHMACKey(&sk.rec))
		}
	}
	slices.SortFunc(out, func(a, b credentials.HMACKey) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// hmacKeysByClient returns the HMAC keys of st without secrets or client
// IDs (as nested in a snapshot), by client, each list ordered by ID.
func hmacKeysByClient(st *state) map[string][]credentials.HMACKey {
	out := make(map[string][]credentials.HMACKey)
	for _, k := range hmacKeysOf(st, "") {
		c := k.ClientID
		k.ClientID = ""
		out[c] = append(out[c], k)
	}
	return out
}

// hmacIDs returns the IDs of list, for the audit log.
func hmacIDs(list []*storedHMACKey) []string {
	return idsOf(list, func(sk *storedHMACKey) string { return sk.rec.ID })
}
