package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwtParser decodes and verifies signatures only: the claims are
// validated per issuer afterwards (leeway, audiences and issuer differ),
// and the algorithm is checked against the issuer's allowlist in the key
// function, before any signature is computed. WithValidMethods here
// refuses "none" and anything golang-jwt would otherwise look up.
// WithStrictDecoding refuses base64url with non-zero trailing bits, so a
// token has one spelling (else a signature's last character can be
// changed and the token still verifies, under another cache key).
var jwtParser = jwt.NewParser(
	jwt.WithValidMethods(SupportedAlgorithms),
	jwt.WithJSONNumber(),
	jwt.WithStrictDecoding(),
	jwt.WithoutClaimsValidation(),
)

// tokenEntry is a verified JWT as Check sees it: what it proves, until
// when. It is cached by the SHA-256 of the token for one index.
type tokenEntry struct {
	deadline  int64 // Unix nanoseconds: exp + leeway
	notBefore int64 // Unix nanoseconds: nbf/iat − leeway (0: none)
	gen       uint64
	fromURI   bool   // keys from a jwks_uri: gen must still be current
	issuer    string // "<tenant>/<name>"
	client    ClientEntry
	Identity  Identity
}

// validAt reports whether e may be used at t (Unix nanoseconds) with key
// generation gen.
func (e *tokenEntry) validAt(t int64, gen uint64) bool {
	return t < e.deadline && t >= e.notBefore && (!e.fromURI || e.gen == gen)
}

// jwtError is a verification failure: the reason goes to the decision
// log, the caller sees token_not_valid.
type jwtError string

func (e jwtError) Error() string { return string(e) }

// verifyJWT verifies tok, whose JOSE header h the caller decoded (ok:
// alg and kid are well-formed), against the issuers of idx at t and
// returns what it proves. A nil entry comes with the reason for the
// decision log; an error (unavailable) only when ctx ended while keys
// were being fetched.
func (c *Checker) verifyJWT(ctx context.Context, idx *Index, tok string, h joseHeader, ok bool, t time.Time) (*tokenEntry, string, error) {
	switch {
	case len(tok) > maxAuthHeader:
		return nil, "token over 8 KiB", nil
	case !ok:
		return nil, "header is not a JSON object with string alg and kid", nil
	case h.HasCrit:
		return nil, "header has crit: no extension is understood", nil
	case strings.EqualFold(h.Alg, "none"):
		return nil, "unsecured token (alg none)", nil
	case h.Alg == "":
		return nil, "header has no alg", nil
	case len(h.Kid) > 256:
		return nil, "kid longer than 256 bytes", nil
	}

	var (
		is      *issuerEntry
		fromURI bool
		gen     uint64
		keyErr  string
	)
	claims := jwt.MapClaims{}
	_, err := jwtParser.ParseWithClaims(tok, claims, func(token *jwt.Token) (any, error) {
		var reason string
		is, reason = idx.matchIssuer(claims)
		if is == nil {
			keyErr = reason
			return nil, jwtError(reason)
		}
		alg := token.Method.Alg()
		if !containsString(is.rec.Algorithms, alg) {
			keyErr = "algorithm " + alg + " is not allowed for issuer " + is.id
			return nil, jwtError(keyErr)
		}
		ks := is.keys
		if is.rec.JWKSURI != "" {
			fromURI = true
			if c.Keys == nil {
				keyErr = "no JWKS fetcher for issuer " + is.id
				return nil, jwtError(keyErr)
			}
			gen = c.Keys.Generation()
			ks = c.Keys.Keys(is.rec.JWKSURI)
			if h.Kid != "" && !ks.hasKid(h.Kid) && refreshableKid(h.Kid) {
				// A key the last fetch did not have: the issuer may have
				// rotated. Refresh is rate-limited per URI.
				gen = c.Keys.Generation()
				ks = c.Keys.Refresh(ctx, is.rec.JWKSURI)
			}
		}
		var keys [maxKeysWithoutKid]any
		cands := ks.candidates(alg, h.Kid, keys[:0])
		if len(cands) == 0 {
			if h.Kid != "" {
				keyErr = "no " + alg + " key with kid " + strconv.Quote(clipString(h.Kid, 64)) + " for issuer " + is.id
			} else {
				keyErr = "no " + alg + " key for issuer " + is.id
			}
			return nil, jwtError(keyErr)
		}
		if len(cands) == 1 {
			return cands[0], nil
		}
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(cands))}
		for i, k := range cands {
			set.Keys[i] = k
		}
		return set, nil
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && fromURI {
			return nil, "", &Error{Code: EUnavailable, Message: "check cancelled while fetching keys", Err: cerr}
		}
		if keyErr != "" {
			return nil, keyErr, nil
		}
		return nil, "invalid token: " + jwtReason(err), nil
	}

	// The signature is good: validate the claims for this issuer.
	opts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(is.leeway),
		jwt.WithTimeFunc(func() time.Time { return t }),
	}
	if is.rec.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(is.rec.Issuer))
	}
	if len(is.rec.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(is.rec.Audiences...))
	}
	if err := jwt.NewValidator(opts...).Validate(claims); err != nil {
		return nil, "invalid claims: " + jwtReason(err), nil
	}
	// golang-jwt reads an aud of another type (a number, an object) as
	// no audience, which passes when the issuer checks none.
	if !audOK(claims) {
		return nil, "aud is neither a string nor an array of strings", nil
	}
	for i := range is.req {
		rc := &is.req[i]
		if v, ok := claimValue(claims, rc.name); !ok || !rc.matches(v) {
			return nil, "claim " + rc.name + " does not have the required value", nil
		}
	}
	if name := is.rec.TenantClaim; name != "" {
		if v, _ := claimValue(claims, name); v != is.rec.Tenant {
			return nil, "claim " + name + " does not name tenant " + is.rec.Tenant, nil
		}
	}
	subject, ok := claimString(claims, is.sub)
	if !ok || subject == "" || len(subject) > 256 || !printable(subject) {
		return nil, "subject claim " + is.sub + " is missing or not a printable string or integer", nil
	}
	var jti string
	if v, present := claims["jti"]; present {
		s, isStr := v.(string)
		if !isStr {
			return nil, "jti is not a string", nil
		}
		jti = s
	}
	if jti != "" && idx.Revoked(jti, t) {
		return nil, "token revoked (jti)", nil
	}

	e := &tokenEntry{fromURI: fromURI, gen: gen, issuer: is.id}
	exp, _ := claims.GetExpirationTime()
	e.deadline = addClamped(exp.Time, is.leeway)
	if nbf, _ := claims.GetNotBefore(); nbf != nil {
		e.notBefore = addClamped(nbf.Time, -is.leeway)
	}
	if iat, _ := claims.GetIssuedAt(); iat != nil {
		e.notBefore = max(e.notBefore, addClamped(iat.Time, -is.leeway))
	}

	// A token that names a client of the issuer's tenant (sub, client_id
	// or azp) is that client's: its state, networks, rate limit and
	// token version apply.
	var ci *clientInfo
	for _, name := range [...]string{"sub", "client_id", "azp"} {
		if id, ok := claims[name].(string); ok {
			if c := idx.clients[id]; c != nil && c.entry.TenantID == is.rec.Tenant {
				ci = c
				break
			}
		}
	}
	scopes, hasScopes := tokenList(claims, "scope", "scp")
	var roles []string
	hasRoles := false
	if is.rec.RolesClaim != "" {
		roles, hasRoles = tokenList(claims, is.rec.RolesClaim)
	}
	e.client = ClientEntry{TenantID: is.rec.Tenant, Active: true, Scopes: scopes, Roles: roles}
	e.Identity = Identity{TenantID: is.rec.Tenant, Subject: subject, Method: "jwt"}
	if ci != nil {
		ce := ci.entry
		if !ce.Active {
			return nil, "client " + ce.ID + " or its tenant is disabled", nil
		}
		ver, ok := claimInt(claims, "ver")
		if !ok {
			return nil, "ver is not an integer", nil
		}
		if ver < ci.rec.TokenVersion {
			return nil, fmt.Sprintf("token version %d is below client %s's %d (revoked)", ver, ce.ID, ci.rec.TokenVersion), nil
		}
		e.client.ID, e.client.Nets, e.client.Limit = ce.ID, ce.Nets, ce.Limit
		if !hasScopes {
			e.client.Scopes = ce.Scopes
		}
		if !hasRoles {
			e.client.Roles = ce.Roles
		}
		e.Identity.ClientID = ce.ID
	}
	e.Identity.Scopes = strings.Join(e.client.Scopes, " ")
	return e, "", nil
}

// audOK reports whether aud is absent, a string or an array of strings.
func audOK(claims jwt.MapClaims) bool {
	v, ok := claims["aud"]
	if !ok {
		return true
	}
	switch v := v.(type) {
	case string:
		return true
	case []any:
		for _, a := range v {
			if _, ok := a.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// matchIssuer returns the active issuer of the token's iss. Several
// tenants may register one IdP, each with a tenant_claim: the token's
// tenant claim picks among them.
func (x *Index) matchIssuer(claims jwt.MapClaims) (*issuerEntry, string) {
	iss := ""
	if v, ok := claims["iss"]; ok {
		s, isStr := v.(string)
		if !isStr {
			return nil, "iss is not a string"
		}
		iss = s
	}
	cands := x.byIss[iss]
	switch len(cands) {
	case 0:
		if iss == "" {
			return nil, "no issuer accepts tokens without iss"
		}
		return nil, "no issuer " + strconv.Quote(clipString(iss, 128))
	case 1:
		return cands[0], ""
	}
	for _, is := range cands {
		if is.rec.TenantClaim == "" {
			continue
		}
		if v, _ := claimValue(claims, is.rec.TenantClaim); v == is.rec.Tenant {
			return is, ""
		}
	}
	for _, is := range cands { // an issuer of a fixed tenant
		if is.rec.TenantClaim == "" {
			return is, ""
		}
	}
	return nil, "no issuer " + strconv.Quote(clipString(iss, 128)) + " of the token's tenant"
}

// refreshableKid reports whether an unknown kid may trigger a JWKS
// refresh: only kids made of characters IdPs use (no path, quote or
// space characters), so crafted kids cost nothing but a map miss.
func refreshableKid(kid string) bool {
	if len(kid) == 0 || len(kid) > 128 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '+' || c == ':') {
			return false
		}
	}
	return !strings.Contains(kid, "..")
}

// claimValue returns the claim name; "a.b" also finds {"a": {"b": v}}
// when there is no claim literally named "a.b".
func claimValue(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// claimString returns a string claim, or an integer claim as a decimal
// string (simplejwt's user_id).
func claimString(claims map[string]any, name string) (string, bool) {
	v, ok := claimValue(claims, name)
	if !ok {
		return "", false
	}
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return strconv.FormatInt(i, 10), true
		}
	}
	return "", false
}

// claimInt returns an integer claim (0 when absent); ok is false when it
// is present but not an integer.
func claimInt(claims map[string]any, name string) (int64, bool) {
	v, present := claims[name]
	if !present {
		return 0, true
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

// tokenList returns the scopes or roles of the first of names present: a
// space-separated string or an array of strings. Entries that are not
// valid names (1-128 of [A-Za-z0-9:._/*-]) are dropped: they could not be
// required by a route anyway, and must not reach a header.
func tokenList(claims map[string]any, names ...string) ([]string, bool) {
	for _, name := range names {
		v, ok := claimValue(claims, name)
		if !ok {
			continue
		}
		var out []string
		switch v := v.(type) {
		case string:
			for s := range strings.FieldsSeq(v) {
				if validToken(s) {
					out = append(out, s)
				}
			}
		case []any:
			for _, item := range v {
				if s, ok := item.(string); ok && validToken(s) {
					out = append(out, s)
				}
			}
		}
		return out, true
	}
	return nil, false
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// addClamped returns t+d in Unix nanoseconds, clamped to int64.
func addClamped(t time.Time, d time.Duration) int64 {
	s := t.Unix()
	if s >= math.MaxInt64/1_000_000_000-100 {
		return math.MaxInt64
	}
	if s <= math.MinInt64/1_000_000_000+100 {
		return math.MinInt64
	}
	return t.UnixNano() + int64(d)
}

// jwtReason turns a golang-jwt error into a decision-log reason. The
// errors name claims and checks, never token contents.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing: " + err.Error()
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature or algorithm"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	}
	return err.Error()
}
