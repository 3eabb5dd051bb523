package credentials

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"maps"
	"strings"
	"sync"
)

// hmacState is the HMAC part of an Index: keys by ID and each tenant's
// legacy (timestamp-body) key.
type hmacState struct {
	hmacRecs map[string]*HMACKey   // every stored key, by ID
	hmacKeys map[string]*hmacEntry // keys of existing clients, by ID
	// legacy maps a tenant to its timestamp-body key: the enabled one (of
	// an active client or not), else a disabled one (so the decision log
	// can say so); nil when it has several enabled ones.
	legacy map[string]*hmacEntry
}

// hmacEntry is an HMAC key as Check sees it.
type hmacEntry struct {
	Client   *ClientEntry
	Expires  int64 // Unix nanoseconds; 0: never
	Disabled bool
	Scheme   string
	Scopes   []string // the key's own (narrower) scopes; empty: the client's
	secret   []byte   // nil when the stored secret does not decode: never verifies
	Identity Identity
	macs     sync.Pool // of hash.Hash: HMAC-SHA256 keyed with secret, reused across Checks
}

// mac returns an HMAC-SHA256 keyed with e's secret, reset; give it back
// with e.macs.Put. hmac.New costs more than hashing a signature base.
func (e *hmacEntry) mac() hash.Hash {
	if m, ok := e.macs.Get().(hash.Hash); ok {
		m.Reset()
		return m
	}
	return hmac.New(sha256.New, e.secret)
}

// verify reports whether sig is the HMAC-SHA256 of base under e's secret
// (VerifyHMACSHA256 with a pooled MAC).
func (e *hmacEntry) verify(base, sig []byte) bool {
	if len(e.secret) == 0 {
		return false
	}
	m := e.mac()
	ok := macMatches(m, base, sig)
	e.macs.Put(m)
	return ok
}

// verifyLegacy reports whether the hex signature sig is the HMAC-SHA256 of
// "<ts>.<body>" under e's secret (VerifyLegacy with a pooled MAC).
func (e *hmacEntry) verifyLegacy(ts string, body []byte, sig string) bool {
	if len(e.secret) == 0 {
		return false
	}
	m := e.mac()
	ok := legacyMatches(m, ts, body, sig)
	e.macs.Put(m)
	return ok
}

// activeAt reports whether e may sign requests at t (Unix nanoseconds).
func (e *hmacEntry) activeAt(t int64) bool { return e.inactive(t) == "" }

// inactive returns why e may not sign requests at t (Unix nanoseconds),
// or "" when it may. The reasons differ so that the decision log tells
// apart what the caller sees as one invalid_signature (SPEC §3).
func (e *hmacEntry) inactive(t int64) string {
	switch {
	case e.Disabled:
		return "HMAC key disabled"
	case e.Expires != 0 && e.Expires <= t:
		return "HMAC key expired"
	case !e.Client.Active:
		return "client or tenant disabled"
	case len(e.secret) == 0:
		return "HMAC key secret unusable (not standard base64 of at least 32 bytes)"
	}
	return ""
}

// buildHMAC (re)builds the HMAC keys of x from recs under x's clients;
// keys active at now (Unix nanoseconds) are counted.
func (x *Index) buildHMAC(recs map[string]*HMACKey, now int64) {
	x.hmacRecs = recs
	x.hmacKeys = make(map[string]*hmacEntry, len(recs))
	x.legacy = map[string]*hmacEntry{}
	x.Counts.HMACKeys = 0
	for id, k := range recs {
		ci := x.clients[k.ClientID]
		if ci == nil {
			continue
		}
		ce := ci.entry
		e := &hmacEntry{Client: ce, Disabled: k.Disabled, Scheme: k.Scheme, Scopes: k.Scopes, secret: k.SecretBytes()}
		if len(e.secret) < MinHMACSecret {
			e.secret = nil // fail closed: never an empty or short secret
		}
		if k.ExpiresAt != nil {
			e.Expires = expiresNano(*k.ExpiresAt)
		}
		e.Identity = Identity{TenantID: ce.TenantID, Subject: ce.ID, ClientID: ce.ID, KeyID: id, Method: "hmac", Scopes: ci.joined}
		if len(k.Scopes) > 0 {
			e.Identity.Scopes = strings.Join(effectiveScopes(ce.Scopes, k.Scopes), " ")
		}
		x.hmacKeys[id] = e
		if e.activeAt(now) {
			x.Counts.HMACKeys++
		}
		if k.Scheme == SchemeTimestampBody {
			// The store allows one enabled legacy key per tenant across
			// its clients, disabled or not; should two slip through, the
			// tenant gets none (fail closed). A disabled key stands in
			// until an enabled one is seen; Check refuses it by name.
			switch prev, seen := x.legacy[ce.TenantID]; {
			case k.Disabled:
				if !seen {
					x.legacy[ce.TenantID] = e
				}
			case !seen || prev != nil && prev.Disabled:
				x.legacy[ce.TenantID] = e
			default:
				x.legacy[ce.TenantID] = nil
			}
		}
	}
}

// hmacRecords returns the HMAC key records of d by ID.
func hmacRecords(keys []HMACKey) map[string]*HMACKey {
	m := make(map[string]*HMACKey, len(keys))
	for i := range keys {
		m[keys[i].ID] = &keys[i]
	}
	return m
}

// withHMAC sets the HMAC state of n, derived from x by d: the keys are
// rebuilt when they, their clients or tenants change (HMAC keys are few).
func (n *Index) withHMAC(x *Index, d *IndexDelta, clientsChanged bool, now int64) {
	n.hmacState = x.hmacState
	if len(d.HMACKeys)+len(d.DeleteHMACKeys) == 0 && !clientsChanged {
		return
	}
	recs := maps.Clone(x.hmacRecs)
	if recs == nil {
		recs = map[string]*HMACKey{}
	}
	for _, id := range d.DeleteHMACKeys {
		delete(recs, id)
	}
	for i := range d.HMACKeys {
		recs[d.HMACKeys[i].ID] = &d.HMACKeys[i]
	}
	for _, id := range d.DeleteClients {
		for kid, k := range recs {
			if k.ClientID == id {
				delete(recs, kid)
			}
		}
	}
	n.buildHMAC(recs, now)
}
