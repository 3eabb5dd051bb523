package credentials

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DenyCode is the code of a denied Check, as shown to the caller.
type DenyCode string

// Deny codes (SPEC §3). Allow is the empty code.
const (
	Allow                DenyCode = ""
	NotAuthenticated     DenyCode = "not_authenticated"
	AmbiguousCredentials DenyCode = "ambiguous_credentials"
	InvalidAPIKey        DenyCode = "invalid_api_key"
	InvalidSignature     DenyCode = "invalid_signature"
	TokenNotValid        DenyCode = "token_not_valid"
	InsufficientScope    DenyCode = "insufficient_scope"
	IPNotAllowed         DenyCode = "ip_not_allowed"
	Forbidden            DenyCode = "forbidden"
	RateLimited          DenyCode = "rate_limited"
)

// Source says where the credential a request presented came from, so the
// adapter can remove it before the request goes upstream.
type Source uint8

// Credential sources.
const (
	FromNone          Source = iota
	FromAPIKeyHeader         // X-API-Key
	FromAuthorization        // Authorization: ApiKey|Token|Bearer
	FromQuery                // ?api_key=
	FromCookie               // the route's cookie
	FromSignature            // Signature/Signature-Input or X-Signature
)

// Request is the part of an HTTP request that Check looks at. Header
// values are as Envoy sends them (repeated headers joined by commas).
// Has* fields tell a present-but-empty value from an absent one.
type Request struct {
	Policy Policy

	Authorization    string
	HasAuthorization bool
	APIKey           string // X-API-Key
	HasAPIKey        bool
	QueryKey         string // api_key query parameter, when the route opts in
	HasQueryKey      bool
	CookieKey        string // the route's cookie, when it opts in
	HasCookieKey     bool
	Signature        bool // HMAC signature headers are present
	// Signed holds what an HMAC signature is checked against; the adapter
	// sets it when Signature is set.
	Signed *SignedRequest

	// SourceIP is the peer address Envoy saw (attributes.source.address).
	SourceIP netip.Addr
}

// Decision is the outcome of a Check.
type Decision struct {
	Code DenyCode
	// Reason tells the operator why (decision log only, never the caller).
	Reason string
	// Identity is set when a credential was verified (also on some denies,
	// for the decision log).
	Identity *Identity
	// Method is the kind of credential presented (0: none).
	Method Methods
	// Source is where the credential came from.
	Source Source
	// Accepted lists the methods the route accepts (for WWW-Authenticate).
	Accepted Methods
	// RetryAfter is set on rate_limited.
	RetryAfter time.Duration
	// Issuer is the "<tenant>/<name>" of the issuer of an allowed JWT
	// (decision log only).
	Issuer string
	// SignatureBase is the RFC 9421 signature base keygate computed for a
	// signature that did not match (debug log only: it holds no secret
	// and no signature, but may hold covered header values).
	SignatureBase string
}

// Allowed reports whether the decision is an allow.
func (d *Decision) Allowed() bool { return d.Code == Allow }

// IndexSource gives the current index; nil means the store is not loaded.
type IndexSource interface {
	Index() *Index
}

// Checker decides Checks against the current index of a store.
// It is safe for concurrent use; the zero value is not (set Source).
type Checker struct {
	Source IndexSource
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// Keys gives the keys of jwks_uri issuers; nil: such issuers verify
	// nothing.
	Keys KeySource
	// JWTCacheSize bounds the verified tokens kept per index: 0 means
	// DefaultJWTCacheSize, a negative value turns the cache off.
	JWTCacheSize int

	// HMACWindow is how far a signature's created time (or X-Timestamp)
	// may be from now; 0 means DefaultHMACWindow, and it is at most
	// MaxHMACWindow.
	HMACWindow time.Duration
	// HMACLabel, when set, names the RFC 9421 signature keygate verifies;
	// by default it is the first whose keyid is a key of the store.
	HMACLabel string
	// ReplayCacheSize bounds the nonces and signatures remembered against
	// replay; 0 means DefaultReplayCacheSize. When it is full of live
	// entries, signed requests are denied.
	ReplayCacheSize int

	buckets    sync.Map // client ID → *bucket
	tokens     atomic.Pointer[tokenCache]
	replayOnce sync.Once
	replays    *replayCache
}

// Check decides r. It returns an error only when it cannot decide: the
// store is not loaded (unavailable) or ctx is done.
func (c *Checker) Check(ctx context.Context, r *Request) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, &Error{Code: EUnavailable, Message: "check cancelled", Err: err}
	}
	idx := c.Source.Index()
	if idx == nil {
		return Decision{}, Errorf(EUnavailable, "credential store is not loaded")
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	p := &r.Policy
	d := Decision{Accepted: p.Methods}

	key, src, code, reason := c.findCredential(r)
	if code != Allow {
		d.Code, d.Reason, d.Source = code, reason, src
		return d, nil
	}
	d.Source = src
	switch src {
	case FromNone:
		if p.Anonymous {
			return d, nil
		}
		d.Code, d.Reason = NotAuthenticated, "no credential"
		return d, nil
	case FromSignature:
		d.Method = MethodHMAC
		if p.Methods&MethodHMAC == 0 {
			d.Code, d.Reason = NotAuthenticated, "hmac not accepted on this route"
			return d, nil
		}
		return c.checkHMAC(d, r, idx, now()), nil
	}
	t := now()
	// A token seen before is found by its digest before anything is
	// decoded; API keys (no dots) never pay for the digest.
	var tc *tokenCache
	var sum [32]byte
	// A JWT counts only as Authorization: Bearer (SPEC §3); a JWT-shaped
	// value anywhere else is an API key (and fails as one).
	bearer := src == FromAuthorization && len(r.Authorization) > 7 && strings.EqualFold(r.Authorization[:7], "bearer ")
	if bearer && strings.IndexByte(key, '.') >= 0 {
		if tc = c.tokenCacheFor(idx); tc != nil {
			sum = tokenSum(key)
			if e := tc.get(&sum); e != nil {
				var gen uint64
				if e.fromURI && c.Keys != nil {
					gen = c.Keys.Generation()
				}
				if e.validAt(t.UnixNano(), gen) {
					return c.allowJWT(d, r, e, t), nil
				}
			}
		}
	}
	var hdr joseHeader
	var jwtShaped, hdrOK bool
	if bearer {
		hdr, jwtShaped, hdrOK = bearerJWT(key)
	}
	if jwtShaped {
		d.Method = MethodJWT
		if p.Methods&MethodJWT == 0 {
			d.Code, d.Reason = NotAuthenticated, "jwt not accepted on this route"
			return d, nil
		}
		e, reason, err := c.verifyJWT(ctx, idx, key, hdr, hdrOK, t)
		if err != nil {
			return Decision{}, err
		}
		if e == nil {
			d.Code, d.Reason = TokenNotValid, reason
			return d, nil
		}
		if tc != nil {
			tc.put(&sum, e)
		}
		return c.allowJWT(d, r, e, t), nil
	}
	d.Method = MethodAPIKey
	if p.Methods&MethodAPIKey == 0 {
		d.Code, d.Reason = NotAuthenticated, "apikey not accepted on this route"
		return d, nil
	}
	if err := CheckKeyFormat(key); err != nil {
		d.Code, d.Reason = InvalidAPIKey, err.Error()
		return d, nil
	}
	sum = HashKey(key)
	e := idx.Key(&sum)
	switch {
	case e == nil:
		d.Code, d.Reason = InvalidAPIKey, "unknown API key"
		return d, nil
	case e.Disabled:
		d.Code, d.Reason = InvalidAPIKey, "API key disabled"
	case e.Expires != 0 && t.UnixNano() >= e.Expires:
		d.Code, d.Reason = InvalidAPIKey, "API key expired"
	case !e.Client.Active:
		d.Code, d.Reason = InvalidAPIKey, "client or tenant disabled"
	}
	d.Identity = &e.Identity
	if d.Code != Allow {
		return d, nil
	}
	e.Usage.Record(t, r.SourceIP)
	c.authorize(&d, r, e.Client, e.Scopes, t)
	return d, nil
}

// allowJWT authorizes the verified token e for r.
func (c *Checker) allowJWT(d Decision, r *Request, e *tokenEntry, t time.Time) Decision {
	d.Method = MethodJWT
	if r.Policy.Methods&MethodJWT == 0 {
		d.Code, d.Reason = NotAuthenticated, "jwt not accepted on this route"
		return d
	}
	d.Identity, d.Issuer = &e.Identity, e.issuer
	c.authorize(&d, r, &e.client, nil, t)
	return d
}

// authorize applies the route's tenant, source, scope, role and rate rules.
func (c *Checker) authorize(d *Decision, r *Request, ce *ClientEntry, keyScopes []string, t time.Time) {
	p := &r.Policy
	if p.Tenant != "" && p.Tenant != ce.TenantID {
		d.Code, d.Reason = Forbidden, "credential of tenant "+ce.TenantID+" on a route of tenant "+p.Tenant
		return
	}
	if len(ce.Nets) > 0 && !inNets(ce.Nets, r.SourceIP) {
		d.Code, d.Reason = IPNotAllowed, "source address not in the client's allowed_cidrs"
		return
	}
	if p.Scopes != "" {
		missing := ""
		eachItem(p.Scopes, func(s string) bool {
			if !ScopeGranted(ce.Scopes, s) || (len(keyScopes) > 0 && !ScopeGranted(keyScopes, s)) {
				missing = s
				return false
			}
			return true
		})
		if missing != "" {
			d.Code, d.Reason = InsufficientScope, "missing scope "+missing
			return
		}
	}
	if p.Roles != "" {
		missing := ""
		eachItem(p.Roles, func(role string) bool {
			for _, have := range ce.Roles {
				if have == role {
					return true
				}
			}
			missing = role
			return false
		})
		if missing != "" {
			d.Code, d.Reason = InsufficientScope, "missing role "+missing
			return
		}
	}
	if ce.Limit.N > 0 {
		if wait := c.bucket(ce).take(t.UnixNano()); wait > 0 {
			d.Code, d.Reason, d.RetryAfter = RateLimited, "rate limit "+ce.Limit.String(), wait
		}
	}
}

func (c *Checker) bucket(ce *ClientEntry) *bucket {
	if v, ok := c.buckets.Load(ce.ID); ok {
		if b := v.(*bucket); b.limit == ce.Limit {
			return b
		}
	}
	b := newBucket(ce.Limit)
	for {
		v, loaded := c.buckets.LoadOrStore(ce.ID, b)
		if !loaded {
			return b
		}
		if old := v.(*bucket); old.limit == ce.Limit {
			return old
		} else if c.buckets.CompareAndSwap(ce.ID, old, b) {
			return b
		}
	}
}

func inNets(nets []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// findCredential returns the one credential the request presents and its
// source, or a deny when it presents several or an oversized one.
func (c *Checker) findCredential(r *Request) (key string, src Source, code DenyCode, reason string) {
	n := 0
	if r.HasAuthorization {
		if len(r.Authorization) > maxAuthHeader {
			return "", FromAuthorization, NotAuthenticated, "authorization header over 8 KiB"
		}
		if k, ok := parseAuthorization(r.Authorization); ok {
			key, src = k, FromAuthorization
			n++
		}
	}
	add := func(has bool, v string, s Source) {
		if !has {
			return
		}
		if n > 0 && v == key && s != FromSignature {
			return // the same key twice is not ambiguous
		}
		if n == 0 {
			key, src = v, s
		}
		n++
	}
	if r.HasAPIKey && len(r.APIKey) > maxAuthHeader {
		return "", FromAPIKeyHeader, InvalidAPIKey, "x-api-key header over 8 KiB"
	}
	add(r.HasAPIKey, r.APIKey, FromAPIKeyHeader)
	// Query and cookie keys count only where the route opted in, whatever
	// the adapter passed.
	add(r.HasQueryKey && r.Policy.QueryKey, r.QueryKey, FromQuery)
	add(r.HasCookieKey && r.Policy.CookieKey != "", r.CookieKey, FromCookie)
	add(r.Signature, "", FromSignature)
	if n > 1 {
		return "", src, AmbiguousCredentials, "more than one credential"
	}
	return key, src, Allow, ""
}

// parseAuthorization returns the credential of an "ApiKey", "Token" or
// "Bearer" Authorization header (scheme case-insensitive). Other schemes
// are not keygate's and are left alone.
func parseAuthorization(v string) (string, bool) {
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok {
		return "", false
	}
	switch {
	case strings.EqualFold(scheme, "ApiKey"), strings.EqualFold(scheme, "Token"), strings.EqualFold(scheme, "Bearer"):
		return strings.TrimLeft(cred, " "), true
	}
	return "", false
}

// isJWT reports whether s has the shape of a JWT: three base64url
// segments joined by two dots, the first decoding to a JSON object.
func isJWT(s string) bool {
	_, shaped, _ := bearerJWT(s)
	return shaped
}
