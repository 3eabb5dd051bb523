package credentials

import (
	"context"
	"encoding/base64"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/keygate/keygate/credentials/credentialstest"
)

// t0 is the checker's clock in tests. BuildIndex counts active keys by the
// real clock, so t0 is after today for TestBuildIndexCounts.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source for Checker.Now.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// source is an IndexSource over a swappable index.
type source struct{ idx *Index }

func (s *source) Index() *Index { return s.idx }

// world is the fixture of the Checker tests: its keys by name, the data
// the index was built from, and a checker over it with a settable clock.
type world struct {
	keys  map[string]string // name → plaintext key
	data  IndexData
	src   *source
	clock *clock
	c     *Checker
}

func ptr[T any](v T) *T { return &v }

func newWorld(t testing.TB) *world {
	w := &world{keys: map[string]string{}, clock: &clock{t0}, src: &source{}}
	w.c = &Checker{Source: w.src, Now: w.clock.Now}
	d := IndexData{
		Revision: 7,
		Tenants:  []Tenant{{Slug: "acme"}, {Slug: "globex"}, {Slug: "dead", Disabled: true}},
		Clients: []Client{
			{ID: "cl_acme", Tenant: "acme", Scopes: []string{"read:*", "write:projects"}, Roles: []string{"reader", "writer"}},
			{ID: "cl_globex", Tenant: "globex", Scopes: []string{"read:projects"}},
			{ID: "cl_off", Tenant: "acme", Disabled: true},
			{ID: "cl_dead", Tenant: "dead"},
			{ID: "cl_orphan", Tenant: "gone"},
			{ID: "cl_net4", Tenant: "acme", AllowedCIDRs: []string{"10.0.0.0/8", "192.168.1.5"}},
			{ID: "cl_net6", Tenant: "acme", AllowedCIDRs: []string{"2001:db8::/32"}},
			{ID: "cl_mapped", Tenant: "acme", AllowedCIDRs: []string{"::ffff:172.16.0.0/108"}},
			{ID: "cl_rl", Tenant: "acme", RateLimit: "3/second"},
			{ID: "cl_narrow", Tenant: "acme", Scopes: []string{"read:*"}},
		},
	}
	add := func(name, client string, k APIKey) {
		key := GenerateAPIKey()
		if name == "django" {
			for key = credentialstest.DjangoKey(); strings.HasPrefix(key, KeyPrefix); key = credentialstest.DjangoKey() {
			}
		}
		w.keys[name] = key
		k.ID, k.ClientID, k.KeySHA256 = "ak_"+name, client, credentialstest.SHA256Hex(key)
		d.APIKeys = append(d.APIKeys, k)
	}
	add("acme", "cl_acme", APIKey{})
	add("django", "cl_acme", APIKey{})
	add("globex", "cl_globex", APIKey{})
	add("disabled", "cl_acme", APIKey{Disabled: true})
	add("expired", "cl_acme", APIKey{ExpiresAt: ptr(t0.Add(-time.Second))})
	add("expiring", "cl_acme", APIKey{ExpiresAt: ptr(t0.Add(time.Second))})
	add("year1", "cl_acme", APIKey{ExpiresAt: ptr(time.Time{})})
	add("epoch", "cl_acme", APIKey{ExpiresAt: ptr(time.Unix(0, 0))})
	add("year9999", "cl_acme", APIKey{ExpiresAt: ptr(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))})
	add("off", "cl_off", APIKey{})
	add("dead", "cl_dead", APIKey{})
	add("orphan", "cl_orphan", APIKey{})
	add("net4", "cl_net4", APIKey{})
	add("net6", "cl_net6", APIKey{})
	add("mapped", "cl_mapped", APIKey{})
	add("rl", "cl_rl", APIKey{})
	add("narrow", "cl_narrow", APIKey{Scopes: []string{"read:projects", "write:projects"}})
	add("nokeyclient", "cl_nobody", APIKey{})
	// A malformed key whose digest is in the store: only a lookup would
	// find it, so its deny proves there was none.
	w.keys["malformed"] = "kg_" + strings.Repeat("A", 46)
	d.APIKeys = append(d.APIKeys, APIKey{ID: "ak_malformed", ClientID: "cl_acme", KeySHA256: credentialstest.SHA256Hex(w.keys["malformed"])})
	w.data = d
	w.src.idx = BuildIndex(d, nil)
	return w
}

func (w *world) check(t *testing.T, r *Request) Decision {
	t.Helper()
	d, err := w.c.Check(context.Background(), r)
	if err != nil {
		t.Fatalf("Check() error = %v", err)
	}
	return d
}

// jwtShaped returns a string of JWT shape (not a valid token).
func jwtShaped(sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(`{"sub":"x"}`)) + "." + sig
}

func xAPIKey(k string) Request { return Request{Policy: DefaultPolicy, APIKey: k, HasAPIKey: true} }
func authz(v string) Request {
	return Request{Policy: DefaultPolicy, Authorization: v, HasAuthorization: true}
}
func withPolicy(r Request, p Policy) Request { r.Policy = p; return r }
func from(r Request, ip string) Request      { r.SourceIP = netip.MustParseAddr(ip); return r }

func TestCheck(t *testing.T) {
	w := newWorld(t)
	k := w.keys
	acmeID := &Identity{TenantID: "acme", Subject: "cl_acme", ClientID: "cl_acme", KeyID: "ak_acme", Method: "apikey", Scopes: "read:* write:projects"}
	anyPolicy := DefaultPolicy
	tests := []struct {
		name   string
		r      Request
		code   DenyCode
		reason string // substring of Decision.Reason
		src    Source
		method Methods
		keyID  string // Identity.KeyID; "" for no identity
	}{
		// Sources.
		{name: "x-api-key", r: xAPIKey(k["acme"]), src: FromAPIKeyHeader, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "authorization ApiKey", r: authz("ApiKey " + k["acme"]), src: FromAuthorization, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "authorization Token", r: authz("Token " + k["acme"]), src: FromAuthorization, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "authorization Bearer", r: authz("Bearer " + k["acme"]), src: FromAuthorization, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "authorization bearer lower case", r: authz("bearer " + k["acme"]), src: FromAuthorization, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "authorization extra spaces", r: authz("APIKEY   " + k["acme"]), src: FromAuthorization, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "authorization django key", r: authz("Token " + k["django"]), src: FromAuthorization, method: MethodAPIKey, keyID: "ak_django"},
		{name: "query", r: Request{Policy: Policy{Methods: AllMethods, QueryKey: true}, QueryKey: k["acme"], HasQueryKey: true}, src: FromQuery, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "cookie", r: Request{Policy: Policy{Methods: AllMethods, CookieKey: "kg"}, CookieKey: k["acme"], HasCookieKey: true}, src: FromCookie, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "query key on a route that did not opt in", r: Request{Policy: anyPolicy, QueryKey: k["acme"], HasQueryKey: true}, code: NotAuthenticated, reason: "no credential"},
		{name: "cookie key on a route that did not opt in", r: Request{Policy: anyPolicy, CookieKey: k["acme"], HasCookieKey: true}, code: NotAuthenticated, reason: "no credential"},
		{name: "same key twice", r: Request{Policy: anyPolicy, APIKey: k["acme"], HasAPIKey: true, Authorization: "ApiKey " + k["acme"], HasAuthorization: true}, src: FromAuthorization, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "basic auth is not keygate's", r: authz("Basic dXNlcjpwYXNz"), code: NotAuthenticated, reason: "no credential"},
		{name: "basic auth and a key", r: Request{Policy: anyPolicy, Authorization: "Basic dXNlcjpwYXNz", HasAuthorization: true, APIKey: k["acme"], HasAPIKey: true}, src: FromAPIKeyHeader, method: MethodAPIKey, keyID: "ak_acme"},
		{name: "no credential", r: Request{Policy: anyPolicy}, code: NotAuthenticated, reason: "no credential"},
		{name: "scheme without value", r: authz("Bearer"), code: NotAuthenticated},

		// Ambiguity and oversize.
		{name: "key and jwt", r: Request{Policy: anyPolicy, APIKey: k["acme"], HasAPIKey: true, Authorization: "Bearer " + jwtShaped("c2ln"), HasAuthorization: true}, code: AmbiguousCredentials, src: FromAuthorization},
		{name: "two different keys", r: Request{Policy: anyPolicy, APIKey: k["acme"], HasAPIKey: true, Authorization: "ApiKey " + k["globex"], HasAuthorization: true}, code: AmbiguousCredentials, src: FromAuthorization},
		{name: "header and query keys", r: Request{Policy: Policy{Methods: AllMethods, QueryKey: true}, APIKey: k["acme"], HasAPIKey: true, QueryKey: k["globex"], HasQueryKey: true}, code: AmbiguousCredentials, src: FromAPIKeyHeader},
		{name: "empty x-api-key and a key", r: Request{Policy: anyPolicy, APIKey: "", HasAPIKey: true, Authorization: "ApiKey " + k["acme"], HasAuthorization: true}, code: AmbiguousCredentials, src: FromAuthorization},
		{name: "signature and key", r: Request{Policy: anyPolicy, APIKey: k["acme"], HasAPIKey: true, Signature: true}, code: AmbiguousCredentials, src: FromAPIKeyHeader},
		{name: "two x-api-key headers merged", r: xAPIKey(k["acme"] + "," + k["globex"]), code: InvalidAPIKey, reason: "malformed", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "same x-api-key twice merged", r: xAPIKey(k["acme"] + "," + k["acme"]), code: InvalidAPIKey, reason: "malformed", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "oversized authorization", r: authz("Bearer " + strings.Repeat("a", 8<<10)), code: NotAuthenticated, reason: "8 KiB", src: FromAuthorization},
		{name: "authorization at the limit", r: authz("ApiKey " + strings.Repeat("a", 8<<10-7)), code: InvalidAPIKey, reason: "malformed", method: MethodAPIKey, src: FromAuthorization},
		{name: "oversized x-api-key", r: xAPIKey(strings.Repeat("a", 8<<10+1)), code: InvalidAPIKey, reason: "8 KiB", src: FromAPIKeyHeader},

		// Keys that do not authenticate, all invalid_api_key.
		{name: "malformed, digest in store", r: xAPIKey(k["malformed"]), code: InvalidAPIKey, reason: "malformed", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "bad checksum", r: xAPIKey(k["acme"][:48] + string("01"[k["acme"][48]&1^1])), code: InvalidAPIKey, reason: "checksum", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "too short", r: xAPIKey("short"), code: InvalidAPIKey, reason: "malformed", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "empty bearer", r: authz("Bearer "), code: InvalidAPIKey, reason: "malformed", method: MethodAPIKey, src: FromAuthorization},
		{name: "unknown", r: xAPIKey(GenerateAPIKey()), code: InvalidAPIKey, reason: "unknown API key", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "unknown django", r: xAPIKey(credentialstest.DjangoKey()[3:]), code: InvalidAPIKey, reason: "unknown API key", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "disabled", r: xAPIKey(k["disabled"]), code: InvalidAPIKey, reason: "disabled", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_disabled"},
		{name: "expired", r: xAPIKey(k["expired"]), code: InvalidAPIKey, reason: "expired", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_expired"},
		{name: "expires in a second", r: xAPIKey(k["expiring"]), src: FromAPIKeyHeader, method: MethodAPIKey, keyID: "ak_expiring"},
		{name: "expired in year 1", r: xAPIKey(k["year1"]), code: InvalidAPIKey, reason: "expired", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_year1"},
		{name: "expired at the epoch", r: xAPIKey(k["epoch"]), code: InvalidAPIKey, reason: "expired", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_epoch"},
		{name: "expires in year 9999", r: xAPIKey(k["year9999"]), src: FromAPIKeyHeader, method: MethodAPIKey, keyID: "ak_year9999"},
		{name: "client disabled", r: xAPIKey(k["off"]), code: InvalidAPIKey, reason: "client or tenant disabled", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_off"},
		{name: "tenant disabled", r: xAPIKey(k["dead"]), code: InvalidAPIKey, reason: "client or tenant disabled", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_dead"},
		{name: "tenant missing", r: xAPIKey(k["orphan"]), code: InvalidAPIKey, reason: "client or tenant disabled", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_orphan"},
		{name: "client missing", r: xAPIKey(k["nokeyclient"]), code: InvalidAPIKey, reason: "unknown API key", method: MethodAPIKey, src: FromAPIKeyHeader},

		// JWT and HMAC shapes (verified elsewhere; here: routing).
		{name: "bearer jwt", r: authz("Bearer " + jwtShaped("c2ln")), code: TokenNotValid, method: MethodJWT, src: FromAuthorization},
		{name: "bearer alg none", r: authz("Bearer " + jwtShaped("")), code: TokenNotValid, method: MethodJWT, src: FromAuthorization},
		{name: "jwt on apikey route", r: withPolicy(authz("Bearer "+jwtShaped("c2ln")), Policy{Methods: MethodAPIKey}), code: NotAuthenticated, reason: "jwt not accepted", method: MethodJWT, src: FromAuthorization},
		{name: "dotted non-jwt is a key", r: authz("Bearer aaaaaaaa.bbbbbbbb.cccccccc"), code: InvalidAPIKey, reason: "unknown API key", method: MethodAPIKey, src: FromAuthorization},
		{name: "signature", r: Request{Policy: anyPolicy, Signature: true}, code: InvalidSignature, method: MethodHMAC, src: FromSignature},
		{name: "signature on apikey route", r: Request{Policy: Policy{Methods: MethodAPIKey}, Signature: true}, code: NotAuthenticated, reason: "hmac not accepted", method: MethodHMAC, src: FromSignature},
		{name: "key on jwt route", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: MethodJWT}), code: NotAuthenticated, reason: "apikey not accepted", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "no methods accepted", r: withPolicy(xAPIKey(k["acme"]), Policy{}), code: NotAuthenticated, method: MethodAPIKey, src: FromAPIKeyHeader},

		// Tenant pin.
		{name: "tenant pin other", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Tenant: "globex"}), code: Forbidden, reason: "tenant", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},
		{name: "tenant pin own", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Tenant: "acme"}), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},

		// Source addresses.
		{name: "ipv4 in cidr", r: from(xAPIKey(k["net4"]), "10.1.2.3"), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net4"},
		{name: "ipv4 single address", r: from(xAPIKey(k["net4"]), "192.168.1.5"), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net4"},
		{name: "ipv4 next to single address", r: from(xAPIKey(k["net4"]), "192.168.1.6"), code: IPNotAllowed, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net4"},
		{name: "ipv4 outside", r: from(xAPIKey(k["net4"]), "11.0.0.1"), code: IPNotAllowed, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net4"},
		{name: "ipv4-mapped source in ipv4 cidr", r: from(xAPIKey(k["net4"]), "::ffff:10.9.9.9"), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net4"},
		{name: "no source address", r: xAPIKey(k["net4"]), code: IPNotAllowed, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net4"},
		{name: "ipv6 in cidr", r: from(xAPIKey(k["net6"]), "2001:db8:1::5"), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net6"},
		{name: "ipv6 outside", r: from(xAPIKey(k["net6"]), "2001:db9::5"), code: IPNotAllowed, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net6"},
		{name: "ipv4 on ipv6 cidr", r: from(xAPIKey(k["net6"]), "10.1.2.3"), code: IPNotAllowed, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_net6"},
		{name: "ipv4 in ipv4-mapped cidr", r: from(xAPIKey(k["mapped"]), "172.16.0.9"), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_mapped"},
		{name: "outside ipv4-mapped cidr", r: from(xAPIKey(k["mapped"]), "172.32.0.9"), code: IPNotAllowed, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_mapped"},

		// Scopes and roles.
		{name: "scopes granted by wildcard", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Scopes: "read:projects, read:users,write:projects"}), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},
		{name: "scope missing", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Scopes: "read:projects,write:users"}), code: InsufficientScope, reason: "missing scope write:users", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},
		{name: "client without scopes", r: withPolicy(xAPIKey(k["rl"]), Policy{Methods: AllMethods, Scopes: "read"}), code: InsufficientScope, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_rl"},
		{name: "narrow key in scope", r: withPolicy(xAPIKey(k["narrow"]), Policy{Methods: AllMethods, Scopes: "read:projects"}), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_narrow"},
		{name: "narrow key beyond its scopes", r: withPolicy(xAPIKey(k["narrow"]), Policy{Methods: AllMethods, Scopes: "read:users"}), code: InsufficientScope, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_narrow"},
		{name: "key scope beyond client's", r: withPolicy(xAPIKey(k["narrow"]), Policy{Methods: AllMethods, Scopes: "write:projects"}), code: InsufficientScope, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_narrow"},
		{name: "roles present", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Roles: "writer, reader"}), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},
		{name: "role missing", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Roles: "reader,admin"}), code: InsufficientScope, reason: "missing role admin", method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},
		{name: "role is not a prefix match", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Roles: "read"}), code: InsufficientScope, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},

		// Anonymous routes.
		{name: "anonymous without credential", r: Request{Policy: Policy{Methods: AllMethods, Anonymous: true}}},
		{name: "anonymous with valid key", r: withPolicy(xAPIKey(k["acme"]), Policy{Methods: AllMethods, Anonymous: true}), method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_acme"},
		{name: "anonymous with unknown key", r: withPolicy(xAPIKey(GenerateAPIKey()), Policy{Methods: AllMethods, Anonymous: true}), code: InvalidAPIKey, reason: "unknown API key", method: MethodAPIKey, src: FromAPIKeyHeader},
		{name: "anonymous with disabled key", r: withPolicy(xAPIKey(k["disabled"]), Policy{Methods: AllMethods, Anonymous: true}), code: InvalidAPIKey, method: MethodAPIKey, src: FromAPIKeyHeader, keyID: "ak_disabled"},
		{name: "anonymous with ambiguous", r: Request{Policy: Policy{Methods: AllMethods, Anonymous: true}, APIKey: k["acme"], HasAPIKey: true, Signature: true}, code: AmbiguousCredentials, src: FromAPIKeyHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			d := w.check(t, &r)
			if d.Code != tt.code || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Check() = %q (%s), want %q (%s)", d.Code, d.Reason, tt.code, tt.reason)
			}
			if d.Allowed() != (tt.code == Allow) {
				t.Errorf("Allowed() = %v", d.Allowed())
			}
			if d.Source != tt.src || d.Method != tt.method || d.Accepted != r.Policy.Methods {
				t.Errorf("Source, Method, Accepted = %v, %v, %v; want %v, %v, %v", d.Source, d.Method, d.Accepted, tt.src, tt.method, r.Policy.Methods)
			}
			gotKey := ""
			if d.Identity != nil {
				gotKey = d.Identity.KeyID
			}
			if gotKey != tt.keyID {
				t.Errorf("Identity.KeyID = %q, want %q", gotKey, tt.keyID)
			}
			if tt.code == InvalidAPIKey && tt.reason != "unknown API key" && strings.Contains(d.Reason, "unknown") {
				t.Errorf("reason %q does not tell this deny from an unknown key", d.Reason)
			}
			if d.RetryAfter != 0 {
				t.Errorf("RetryAfter = %v", d.RetryAfter)
			}
		})
	}

	// The full identity of an allow.
	r := xAPIKey(k["acme"])
	if d := w.check(t, &r); !cmp.Equal(d.Identity, acmeID) {
		t.Errorf("Identity (-want +got):\n%s", cmp.Diff(acmeID, d.Identity))
	}
	r = xAPIKey(k["narrow"])
	if d := w.check(t, &r); d.Identity.Scopes != "read:projects" {
		t.Errorf("narrow key scopes = %q, want the key's scopes the client grants", d.Identity.Scopes)
	}
}

func TestCheckMalformedWithoutLookup(t *testing.T) {
	w := newWorld(t)
	// The digest of the malformed key is in the index: a lookup would find it.
	sum := HashKey(w.keys["malformed"])
	if w.src.idx.Key(&sum) == nil {
		t.Fatal("test setup: malformed key not in the index")
	}
	r := xAPIKey(w.keys["malformed"])
	d := w.check(t, &r)
	if d.Code != InvalidAPIKey || !strings.HasPrefix(d.Reason, ErrKeyFormat.Error()) || d.Identity != nil {
		t.Errorf("Check() = %q %q %v, want invalid_api_key, %q..., no identity", d.Code, d.Reason, d.Identity, ErrKeyFormat)
	}
	r = xAPIKey(GenerateAPIKey())
	if d2 := w.check(t, &r); d2.Reason == d.Reason || d2.Code != d.Code {
		t.Errorf("unknown key %q/%q vs malformed %q/%q: same code, different reason wanted", d2.Code, d2.Reason, d.Code, d.Reason)
	}
}

func TestCheckRateLimit(t *testing.T) {
	w := newWorld(t)
	r := xAPIKey(w.keys["rl"])
	for i := 0; i < 3; i++ {
		if d := w.check(t, &r); !d.Allowed() {
			t.Fatalf("request %d: %q %s", i+1, d.Code, d.Reason)
		}
	}
	d := w.check(t, &r)
	if d.Code != RateLimited || d.RetryAfter <= 0 || d.RetryAfter > time.Second/3 || d.Identity == nil || d.Identity.ClientID != "cl_rl" {
		t.Fatalf("4th request: %q RetryAfter %v identity %v", d.Code, d.RetryAfter, d.Identity)
	}
	if !strings.Contains(d.Reason, "3/second") {
		t.Errorf("reason %q does not name the limit", d.Reason)
	}
	// Other clients are not limited by it.
	other := xAPIKey(w.keys["acme"])
	if d := w.check(t, &other); !d.Allowed() {
		t.Errorf("other client: %q", d.Code)
	}
	// Retrying after RetryAfter succeeds; no sleeping, the clock moves.
	w.clock.t = w.clock.t.Add(d.RetryAfter)
	if d := w.check(t, &r); !d.Allowed() {
		t.Fatalf("after RetryAfter: %q %s", d.Code, d.Reason)
	}
	if d := w.check(t, &r); d.Code != RateLimited {
		t.Fatalf("right after: %q", d.Code)
	}
	// A second later the bucket is full again.
	w.clock.t = w.clock.t.Add(time.Second)
	for i := 0; i < 3; i++ {
		if d := w.check(t, &r); !d.Allowed() {
			t.Fatalf("after refill, request %d: %q", i+1, d.Code)
		}
	}
	if d := w.check(t, &r); d.Code != RateLimited {
		t.Fatalf("after refill, 4th: %q", d.Code)
	}
	// The bucket survives an index rebuild with the same limit...
	w.src.idx = BuildIndex(w.data, w.src.idx)
	if d := w.check(t, &r); d.Code != RateLimited {
		t.Fatalf("after rebuild: %q", d.Code)
	}
	// ...and a new limit takes effect at once.
	for i := range w.data.Clients {
		if w.data.Clients[i].ID == "cl_rl" {
			w.data.Clients[i].RateLimit = "5/second"
		}
	}
	w.src.idx = BuildIndex(w.data, w.src.idx)
	for i := 0; i < 5; i++ {
		if d := w.check(t, &r); !d.Allowed() {
			t.Fatalf("new limit, request %d: %q", i+1, d.Code)
		}
	}
	if d := w.check(t, &r); d.Code != RateLimited || !strings.Contains(d.Reason, "5/second") {
		t.Fatalf("new limit, 6th: %q %s", d.Code, d.Reason)
	}
	// Denied keys spend no tokens: a deny before the limit is not counted.
	w.clock.t = w.clock.t.Add(time.Hour)
	pinned := withPolicy(xAPIKey(w.keys["rl"]), Policy{Methods: AllMethods, Tenant: "globex"})
	for i := 0; i < 10; i++ {
		w.check(t, &pinned)
	}
	if d := w.check(t, &r); !d.Allowed() {
		t.Fatalf("forbidden requests spent tokens: %q", d.Code)
	}
}

func TestCheckErrors(t *testing.T) {
	c := &Checker{Source: &source{}}
	r := xAPIKey(GenerateAPIKey())
	d, err := c.Check(context.Background(), &r)
	if ErrorCode(err) != EUnavailable || d.Allowed() && err == nil {
		t.Errorf("nil index: %v, %v; want an unavailable error", d, err)
	}
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = xAPIKey(w.keys["acme"])
	if _, err := w.c.Check(ctx, &r); err == nil || ErrorCode(err) != EUnavailable {
		t.Errorf("cancelled context: %v", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := w.c.Check(ctx, &r); err == nil {
		t.Errorf("expired deadline: no error")
	}
}

func TestCheckUsage(t *testing.T) {
	w := newWorld(t)
	sum := HashKey(w.keys["acme"])
	e := w.src.idx.Key(&sum)
	if _, _, ok := e.Usage.Pending(); ok {
		t.Fatal("fresh key has pending usage")
	}
	// Denied requests record nothing.
	r := from(withPolicy(xAPIKey(w.keys["disabled"]), DefaultPolicy), "10.0.0.1")
	w.check(t, &r)
	ds := HashKey(w.keys["disabled"])
	if _, _, ok := w.src.idx.Key(&ds).Usage.Pending(); ok {
		t.Error("disabled key recorded a use")
	}

	r = from(xAPIKey(w.keys["acme"]), "10.0.0.7")
	if d := w.check(t, &r); !d.Allowed() {
		t.Fatal(d.Code)
	}
	last, ip, ok := e.Usage.Pending()
	if !ok || !last.Equal(t0) || ip != netip.MustParseAddr("10.0.0.7") {
		t.Fatalf("Pending() = %v, %v, %v; want %v, 10.0.0.7", last, ip, ok, t0)
	}
	// The next index carries the same counter over.
	next := BuildIndex(w.data, w.src.idx)
	if ne := next.Key(&sum); ne.Usage != e.Usage {
		t.Fatal("usage not carried over by BuildIndex")
	}
	found := false
	next.EachUsage(func(id string, u *Usage) {
		if id == "ak_acme" {
			found = u == e.Usage
		}
	})
	if !found {
		t.Error("EachUsage does not list ak_acme's usage")
	}
	e.Usage.MarkFlushed(last)
	if _, _, ok := e.Usage.Pending(); ok {
		t.Error("Pending after MarkFlushed")
	}
	// A later use is pending again.
	w.src.idx = next
	w.clock.t = t0.Add(time.Minute)
	w.check(t, &r)
	if last, _, ok := e.Usage.Pending(); !ok || !last.Equal(t0.Add(time.Minute)) {
		t.Errorf("Pending() after a later use = %v, %v", last, ok)
	}
}

// atomicSource publishes indexes as a store does.
type atomicSource struct{ p atomic.Pointer[Index] }

func (s *atomicSource) Index() *Index { return s.p.Load() }

// TestCheckConcurrent runs Checks while indexes are swapped (run with
// -race) and spends a rate limit from many goroutines at once: exactly N
// requests of a N/period limit are allowed.
func TestCheckConcurrent(t *testing.T) {
	w := newWorld(t)
	src := &atomicSource{}
	src.p.Store(w.src.idx)
	for i := range w.data.Clients {
		if w.data.Clients[i].ID == "cl_rl" {
			w.data.Clients[i].RateLimit = "500/hour"
		}
	}
	src.p.Store(BuildIndex(w.data, src.Index()))
	c := &Checker{Source: src, Now: func() time.Time { return t0 }}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := xAPIKey(w.keys["rl"])
			for i := 0; i < 200; i++ {
				d, err := c.Check(context.Background(), &r)
				if err != nil {
					t.Error(err)
					return
				}
				switch d.Code {
				case Allow:
					allowed.Add(1)
				case RateLimited:
				default:
					t.Errorf("unexpected %q %s", d.Code, d.Reason)
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		src.p.Store(BuildIndex(w.data, src.Index()))
	}
	wg.Wait()
	if n := allowed.Load(); n != 500 {
		t.Errorf("allowed %d of 1600 requests under a 500/hour limit, want 500", n)
	}
}
