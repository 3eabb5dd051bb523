package credentials

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"
)

// jwtState is the JWT part of an Index: the issuers by iss value and the
// revoked JWT IDs. Like the rest of an Index it is immutable once built.
type jwtState struct {
	issuerList []*issuerEntry            // all issuers, ordered by ID
	byIss      map[string][]*issuerEntry // iss value ("" for tokens without iss) → active issuers
	revoked    map[string]int64          // jti → expiry, Unix seconds
}

// issuerEntry is an issuer as Check sees it.
type issuerEntry struct {
	rec    Issuer
	id     string
	active bool    // the issuer and its tenant are enabled, and its keys parse
	keys   *KeySet // inline keys; nil for a jwks_uri issuer
	leeway time.Duration
	sub    string // subject claim
	req    []requiredClaim
}

// requiredClaim is one of an issuer's required_claims.
type requiredClaim struct {
	name string
	str  *string
	num  *float64
	b    *bool
}

// matches reports whether the claim value v (decoded with json.Number)
// equals the required value exactly.
func (rc *requiredClaim) matches(v any) bool {
	switch {
	case rc.str != nil:
		s, ok := v.(string)
		return ok && s == *rc.str
	case rc.b != nil:
		b, ok := v.(bool)
		return ok && b == *rc.b
	case rc.num != nil:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(string(n), 64)
		return err == nil && f == *rc.num
	}
	return false
}

// newIssuerEntry compiles is under the tenants of x. An issuer whose
// settings do not compile (a record that slipped past validation) is
// inactive: it fails closed.
func (x *Index) newIssuerEntry(is *Issuer) *issuerEntry {
	disabled, ok := x.tenants[is.Tenant]
	e := &issuerEntry{
		rec:    *is,
		id:     is.ID(),
		active: !is.Disabled && ok && !disabled,
		leeway: time.Duration(is.Leeway),
		sub:    is.SubjectClaim,
	}
	if e.sub == "" {
		e.sub = "sub"
	}
	if is.JWKSURI == "" {
		ks, err := NewKeySet(is.JWKS)
		if err != nil || ks.Len() == 0 {
			e.active = false
		}
		e.keys = ks
	}
	if len(is.Algorithms) == 0 || e.leeway < 0 || e.leeway > MaxLeeway {
		e.active = false
	}
	for _, name := range slices.Sorted(maps.Keys(is.RequiredClaims)) {
		rc := requiredClaim{name: name}
		switch v := is.RequiredClaims[name].(type) {
		case string:
			rc.str = &v
		case bool:
			rc.b = &v
		case float64:
			rc.num = &v
		case json.Number:
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				e.active = false
			}
			rc.num = &f
		default:
			e.active = false
		}
		e.req = append(e.req, rc)
	}
	return e
}

// buildJWT builds the JWT state of x from its issuers and revocations
// (expired revocations are skipped). x.tenants must be set.
func (x *Index) buildJWT(issuers []Issuer, revs []Revocation, now time.Time) {
	x.issuerList = make([]*issuerEntry, 0, len(issuers))
	for i := range issuers {
		x.issuerList = append(x.issuerList, x.newIssuerEntry(&issuers[i]))
	}
	x.indexIssuers()
	x.revoked = make(map[string]int64, len(revs))
	x.addRevocations(revs, now)
}

// indexIssuers sorts issuerList, fills byIss and counts active issuers.
func (x *Index) indexIssuers() {
	slices.SortFunc(x.issuerList, func(a, b *issuerEntry) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	x.byIss = make(map[string][]*issuerEntry, len(x.issuerList))
	x.Counts.Issuers = 0
	for _, e := range x.issuerList {
		if e.active {
			x.byIss[e.rec.Issuer] = append(x.byIss[e.rec.Issuer], e)
			x.Counts.Issuers++
		}
	}
}

func (x *Index) addRevocations(revs []Revocation, now time.Time) {
	t := now.Unix()
	for i := range revs {
		exp := revs[i].ExpiresAt.Unix()
		if exp <= t {
			continue
		}
		if cur, ok := x.revoked[revs[i].JTI]; !ok || exp > cur {
			x.revoked[revs[i].JTI] = exp
		}
	}
}

// withJWT sets the JWT state of n, derived from x by d (n.tenants is
// already n's): issuers are recompiled when they or the tenants change;
// revocations are copied on write, dropping expired ones.
func (n *Index) withJWT(x *Index, d *IndexDelta, now time.Time) {
	n.jwtState = x.jwtState
	if len(d.Issuers)+len(d.DeleteIssuers)+len(d.Tenants)+len(d.DeleteTenants) > 0 {
		recs := map[string]*Issuer{}
		for _, e := range x.issuerList {
			recs[e.id] = &e.rec
		}
		for _, id := range d.DeleteIssuers {
			delete(recs, id)
		}
		for i := range d.Issuers {
			recs[d.Issuers[i].ID()] = &d.Issuers[i]
		}
		n.issuerList = make([]*issuerEntry, 0, len(recs))
		for _, is := range recs {
			n.issuerList = append(n.issuerList, n.newIssuerEntry(is))
		}
		n.indexIssuers()
	}
	if len(d.Revocations) > 0 {
		t := now.Unix()
		n.revoked = make(map[string]int64, len(x.revoked)+len(d.Revocations))
		for jti, exp := range x.revoked {
			if exp > t {
				n.revoked[jti] = exp
			}
		}
		n.addRevocations(d.Revocations, now)
	}
}

// Revoked reports whether the JWT ID jti is revoked at now.
func (x *Index) Revoked(jti string, now time.Time) bool {
	exp, ok := x.revoked[jti]
	return ok && exp > now.Unix()
}

// JWKSURIs returns the jwks_uri of every active issuer of x with the
// shortest refresh interval asked for it, for the fetcher (package jwks).
func (x *Index) JWKSURIs() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, is := range x.issuerList {
		if is.rec.JWKSURI == "" || !is.active {
			continue
		}
		r := time.Duration(is.rec.JWKSRefresh)
		if r <= 0 {
			r = DefaultJWKSRefresh
		}
		if cur, ok := out[is.rec.JWKSURI]; !ok || r < cur {
			out[is.rec.JWKSURI] = r
		}
	}
	return out
}
