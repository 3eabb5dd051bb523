package credentials

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func remoteClaims(kv ...any) jwt.MapClaims {
	return mainClaims(append([]any{"iss", issRemote, "aud", deleted{}}, kv...)...)
}

// TestCheckJWTJWKSURI: a jwks_uri issuer's keys come from the KeySource;
// an unknown kid of IdP shape refreshes the set once (key rotation), a
// crafted kid never does.
func TestCheckJWTJWKSURI(t *testing.T) {
	w := newJWTWorld(t)
	k := w.k
	check := func(t *testing.T, tok string) Decision {
		t.Helper()
		r := bearer(tok)
		return w.check(t, &r)
	}
	calls := func() (int64, int64) { return w.fake.keysCalls.Load(), w.fake.refreshCalls.Load() }

	t.Run("known kid", func(t *testing.T) {
		for _, tok := range []string{
			mint(t, jwt.SigningMethodRS256, k.rsaA, "r-a", remoteClaims()),
			mint(t, jwt.SigningMethodES256, k.ec, "e-1", remoteClaims()),
			mint(t, jwt.SigningMethodES256, k.ec, "", remoteClaims()),
		} {
			_, r0 := calls()
			if d := check(t, tok); !d.Allowed() || d.Issuer != "acme/remote" {
				t.Errorf("Check() = %q (%s) issuer %q", d.Code, d.Reason, d.Issuer)
			}
			if _, r1 := calls(); r1 != r0 {
				t.Error("a known kid refreshed the key set")
			}
		}
	})

	t.Run("crafted kids never refresh", func(t *testing.T) {
		for _, kid := range []string{"../../etc/passwd", "' OR 1=1 --", "a/b", "..", "k\x00", "a b", `"`, "%2e%2e%2f", strings.Repeat("k", 129), "<script>"} {
			k0, r0 := calls()
			d := check(t, mint(t, jwt.SigningMethodRS256, k.rsaA, kid, remoteClaims()))
			if d.Code != TokenNotValid || !strings.Contains(d.Reason, "no RS256 key with kid") {
				t.Errorf("kid %q: %q (%s)", kid, d.Code, d.Reason)
			}
			if k1, r1 := calls(); r1 != r0 || k1 != k0+1 {
				t.Errorf("kid %q: %d Keys and %d Refresh calls, want 1 and 0", kid, k1-k0, r1-r0)
			}
		}
	})

	t.Run("unknown kid refreshes once", func(t *testing.T) {
		_, r0 := calls()
		d := check(t, mint(t, jwt.SigningMethodRS256, k.rsaB, "r-b", remoteClaims()))
		if d.Code != TokenNotValid || !strings.Contains(d.Reason, `kid "r-b"`) {
			t.Errorf("Check() = %q (%s)", d.Code, d.Reason)
		}
		if _, r1 := calls(); r1 != r0+1 {
			t.Errorf("%d Refresh calls, want 1", r1-r0)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		// The IdP rotated to r-b: the last fetch does not have it, the
		// refresh finds it.
		w.remote.mu.Lock()
		w.remote.next = mustKeySet(t, rsaJWK(&k.rsaB.PublicKey, "r-b", ""), rsaJWK(&k.rsaA.PublicKey, "r-a", ""))
		w.remote.mu.Unlock()
		_, r0 := calls()
		tok := mint(t, jwt.SigningMethodRS256, k.rsaB, "r-b", remoteClaims("jti", "rotated"))
		if d := check(t, tok); !d.Allowed() {
			t.Fatalf("after rotation: %q (%s)", d.Code, d.Reason)
		}
		if _, r1 := calls(); r1 != r0+1 {
			t.Errorf("%d Refresh calls, want 1", r1-r0)
		}
		// The next token of the new key needs no refresh.
		if d := check(t, mint(t, jwt.SigningMethodRS256, k.rsaB, "r-b", remoteClaims("jti", "next"))); !d.Allowed() {
			t.Errorf("second token: %q (%s)", d.Code, d.Reason)
		}
		if _, r2 := calls(); r2 != r0+1 {
			t.Errorf("%d Refresh calls for the second token, want none", r2-r0-1)
		}
	})

	t.Run("no keys fetched yet", func(t *testing.T) {
		w.remote.swap(nil, true)
		d := check(t, mint(t, jwt.SigningMethodRS256, k.rsaA, "", remoteClaims("jti", "nokeys")))
		if d.Code != TokenNotValid {
			t.Errorf("Check() = %q (%s)", d.Code, d.Reason)
		}
	})

	t.Run("no KeySource", func(t *testing.T) {
		c := &Checker{Source: w.src, Now: w.clock.Now}
		r := bearer(mint(t, jwt.SigningMethodRS256, k.rsaA, "r-a", remoteClaims("jti", "nosource")))
		d, err := c.Check(context.Background(), &r)
		if err != nil || d.Code != TokenNotValid || !strings.Contains(d.Reason, "no JWKS fetcher") {
			t.Errorf("Check() = %q (%s), %v", d.Code, d.Reason, err)
		}
	})
}

// TestCheckJWTRefreshCancelled: a Check whose context ends while keys
// are being refreshed is an unavailable error, never an allow or a deny.
func TestCheckJWTRefreshCancelled(t *testing.T) {
	w := newJWTWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	w.fake.RefreshFunc = func(ctx context.Context, uri string) *KeySet {
		cancel()
		<-ctx.Done()
		return nil
	}
	r := bearer(mint(t, jwt.SigningMethodRS256, w.k.rsaB, "r-b", remoteClaims()))
	if _, err := w.c.Check(ctx, &r); ErrorCode(err) != EUnavailable {
		t.Errorf("Check() error = %v, want an unavailable error", err)
	}
	if w.c.tokens.Load() != nil && w.c.tokens.Load().get(ptr(tokenSum(r.Authorization[len("Bearer "):]))) != nil {
		t.Error("the undecided token was cached")
	}
}

// TestJWTCacheGeneration: a cached token of a jwks_uri issuer is good
// while the key generation it was verified with is current.
func TestJWTCacheGeneration(t *testing.T) {
	w := newJWTWorld(t)
	tok := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "r-a", remoteClaims())
	check := func() Decision { r := bearer(tok); return w.check(t, &r) }
	if d := check(); !d.Allowed() {
		t.Fatalf("first: %q (%s)", d.Code, d.Reason)
	}
	// The set loses the key, the generation stays: the cached
	// verification still answers.
	w.remote.swap(mustKeySet(t, ecJWK(&w.k.ec.PublicKey, "e-1")), false)
	if d := check(); !d.Allowed() {
		t.Fatalf("same generation: %q (%s)", d.Code, d.Reason)
	}
	// The generation moves: the token is verified again, against a set
	// without its key.
	w.remote.swap(mustKeySet(t, ecJWK(&w.k.ec.PublicKey, "e-1")), true)
	if d := check(); d.Code != TokenNotValid {
		t.Fatalf("new generation: %q (%s)", d.Code, d.Reason)
	}
	// And when the key comes back it is allowed again.
	w.remote.swap(mustKeySet(t, rsaJWK(&w.k.rsaA.PublicKey, "r-a", "")), true)
	if d := check(); !d.Allowed() {
		t.Fatalf("key back: %q (%s)", d.Code, d.Reason)
	}
}

// TestJWTCache: a repeated token is answered from the cache until its
// exp (plus leeway) or a new index; JWTCacheSize -1 turns it off.
func TestJWTCache(t *testing.T) {
	w := newJWTWorld(t)
	tok := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "r-a", remoteClaims("jti", "cache-me", "exp", t0.Add(time.Minute).Unix()))
	check := func() Decision { r := bearer(tok); return w.check(t, &r) }

	if d := check(); !d.Allowed() {
		t.Fatalf("first: %q (%s)", d.Code, d.Reason)
	}
	// Served from the cache: no key lookup.
	k0 := w.fake.keysCalls.Load()
	for i := 0; i < 3; i++ {
		if d := check(); !d.Allowed() {
			t.Fatalf("repeat %d: %q (%s)", i, d.Code, d.Reason)
		}
	}
	if n := w.fake.keysCalls.Load() - k0; n != 0 {
		t.Errorf("repeated token looked up keys %d times, want 0", n)
	}
	// Even with no keys at all (same generation).
	w.remote.swap(nil, false)
	if d := check(); !d.Allowed() {
		t.Errorf("cached, keys gone: %q (%s)", d.Code, d.Reason)
	}
	w.remote.swap(mustKeySet(t, rsaJWK(&w.k.rsaA.PublicKey, "r-a", "")), false)

	// exp is t0+1m; the remote issuer has no leeway.
	w.clock.t = t0.Add(time.Minute - time.Nanosecond)
	if d := check(); !d.Allowed() {
		t.Errorf("just before exp: %q (%s)", d.Code, d.Reason)
	}
	w.clock.t = t0.Add(time.Minute)
	if d := check(); d.Code != TokenNotValid || !strings.Contains(d.Reason, "expired") {
		t.Errorf("at exp: %q (%s)", d.Code, d.Reason)
	}
	w.clock.t = t0

	// A new index (a revocation of its jti) drops the cache.
	if d := check(); !d.Allowed() {
		t.Fatalf("back at t0: %q (%s)", d.Code, d.Reason)
	}
	w.data.Revision++
	w.data.Revocations = append(w.data.Revocations, Revocation{JTI: "cache-me", ExpiresAt: t0.Add(time.Hour)})
	w.src.idx = BuildIndex(w.data, w.src.idx)
	if d := check(); d.Code != TokenNotValid || !strings.Contains(d.Reason, "revoked") {
		t.Errorf("revoked in a new index: %q (%s)", d.Code, d.Reason)
	}
	// Likewise through an IndexDelta.
	tok2 := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "r-a", remoteClaims("jti", "delta"))
	r := bearer(tok2)
	if d := w.check(t, &r); !d.Allowed() {
		t.Fatalf("tok2: %q (%s)", d.Code, d.Reason)
	}
	w.src.idx = w.src.idx.With(&IndexDelta{Revision: w.data.Revision + 1, Revocations: []Revocation{{JTI: "delta", ExpiresAt: t0.Add(time.Hour)}}})
	if d := w.check(t, &r); d.Code != TokenNotValid || !strings.Contains(d.Reason, "revoked") {
		t.Errorf("revoked by a delta: %q (%s)", d.Code, d.Reason)
	}
}

// TestJWTCacheExpiryWithLeeway: a cached token of an issuer with leeway
// answers until exp+leeway, and a token not valid yet is not cached
// into validity.
func TestJWTCacheExpiryWithLeeway(t *testing.T) {
	w := newJWTWorld(t)
	tok := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "rsa-a", mainClaims("exp", t0.Add(time.Minute).Unix()))
	r := bearer(tok)
	for _, tc := range []struct {
		at    time.Duration
		allow bool
	}{{0, true}, {time.Minute, true}, {time.Minute + mainLeeway - 1, true}, {time.Minute + mainLeeway, false}, {time.Hour, false}} {
		w.clock.t = t0.Add(tc.at)
		if d := w.check(t, &r); d.Allowed() != tc.allow {
			t.Errorf("at t0+%v: %q (%s), want allowed %v", tc.at, d.Code, d.Reason, tc.allow)
		}
	}
	// iat 20s ahead (within leeway) is verified at t0; 20s back in
	// time (iat-leeway is t0-10s) it is still good, 31s back it is not.
	w.clock.t = t0
	tok = mint(t, jwt.SigningMethodRS256, w.k.rsaA, "rsa-a", mainClaims("iat", t0.Add(20*time.Second).Unix()))
	r = bearer(tok)
	for _, tc := range []struct {
		at    time.Duration
		allow bool
	}{{0, true}, {-10 * time.Second, true}, {-11 * time.Second, false}} {
		w.clock.t = t0.Add(tc.at)
		if d := w.check(t, &r); d.Allowed() != tc.allow {
			t.Errorf("iat: at t0%v: %q (%s), want allowed %v", tc.at, d.Code, d.Reason, tc.allow)
		}
	}
}

// TestJWTCacheOff: with JWTCacheSize -1 every Check verifies again.
func TestJWTCacheOff(t *testing.T) {
	w := newJWTWorld(t)
	w.c.JWTCacheSize = -1
	tok := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "r-a", remoteClaims())
	r := bearer(tok)
	for i := 0; i < 3; i++ {
		k0 := w.fake.keysCalls.Load()
		if d := w.check(t, &r); !d.Allowed() {
			t.Fatalf("check %d: %q (%s)", i, d.Code, d.Reason)
		}
		if w.fake.keysCalls.Load() != k0+1 {
			t.Errorf("check %d did not look up keys", i)
		}
	}
	if w.c.tokens.Load() != nil {
		t.Error("a cache was made")
	}
	// Keys gone, same generation: without a cache that is a deny.
	w.remote.swap(nil, false)
	if d := w.check(t, &r); d.Code != TokenNotValid {
		t.Errorf("keys gone: %q (%s)", d.Code, d.Reason)
	}
}

// TestJWTCacheBounded: 1,000 distinct tokens through a cache of 64 leave
// at most 64 entries.
func TestJWTCacheBounded(t *testing.T) {
	w := newJWTWorld(t)
	w.c.JWTCacheSize = 64
	for i := 0; i < 1000; i++ {
		r := bearer(mint(t, jwt.SigningMethodHS256, w.k.hmac, "", djangoClaims("jti", strconv.Itoa(i))))
		if d := w.check(t, &r); !d.Allowed() {
			t.Fatalf("token %d: %q (%s)", i, d.Code, d.Reason)
		}
	}
	tc := w.c.tokens.Load()
	if tc == nil {
		t.Fatal("no cache")
	}
	n := 0
	for i := range tc.shards {
		tc.shards[i].mu.RLock()
		n += len(tc.shards[i].m)
		tc.shards[i].mu.RUnlock()
	}
	if n > 64 || n == 0 {
		t.Errorf("%d entries in a cache of 64", n)
	}
	// API keys never enter it.
	before := n
	r := xAPIKey(w.keys["acme"])
	w.check(t, &r)
	n = 0
	for i := range tc.shards {
		n += len(tc.shards[i].m)
	}
	if n != before {
		t.Errorf("an API key changed the token cache: %d → %d", before, n)
	}
}

// TestJWTCacheRoutes: a cached token is authorized per request: the
// cache does not let it past a route that does not accept JWTs, a
// pinned tenant or a scope it lacks.
func TestJWTCacheRoutes(t *testing.T) {
	w := newJWTWorld(t)
	tok := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "rsa-a", mainClaims())
	r := bearer(tok)
	if d := w.check(t, &r); !d.Allowed() {
		t.Fatal(d.Reason)
	}
	for _, tc := range []struct {
		p    Policy
		code DenyCode
	}{
		{Policy{Methods: MethodAPIKey}, NotAuthenticated},
		{Policy{Methods: AllMethods, Tenant: "globex"}, Forbidden},
		{Policy{Methods: AllMethods, Scopes: "admin"}, InsufficientScope},
		{Policy{Methods: AllMethods, Roles: "admin"}, InsufficientScope},
		{Policy{Methods: AllMethods}, Allow},
	} {
		r := withPolicy(bearer(tok), tc.p)
		if d := w.check(t, &r); d.Code != tc.code {
			t.Errorf("%+v: %q (%s), want %q", tc.p, d.Code, d.Reason, tc.code)
		}
	}
}

// TestJWTCacheConcurrent runs JWT Checks from many goroutines while
// indexes are swapped (run with -race).
func TestJWTCacheConcurrent(t *testing.T) {
	w := newJWTWorld(t)
	src := &atomicSource{}
	src.p.Store(w.src.idx)
	c := &Checker{Source: src, Now: w.clock.Now, Keys: w.fake, JWTCacheSize: 64}
	toks := []string{
		mint(t, jwt.SigningMethodRS256, w.k.rsaA, "rsa-a", mainClaims()),
		mint(t, jwt.SigningMethodES256, w.k.ec, "ec-1", mainClaims()),
		mint(t, jwt.SigningMethodHS256, w.k.hmac, "", djangoClaims()),
		mint(t, jwt.SigningMethodRS256, w.k.rsaA, "r-a", remoteClaims()),
	}
	revoked := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "rsa-a", mainClaims("jti", "jti-revoked"))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				r := bearer(toks[(g+i)%len(toks)])
				if d, err := c.Check(context.Background(), &r); err != nil || !d.Allowed() {
					t.Errorf("%q (%s), %v", d.Code, d.Reason, err)
					return
				}
				r = bearer(revoked)
				if d, _ := c.Check(context.Background(), &r); d.Allowed() {
					t.Error("revoked token allowed")
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		src.p.Store(BuildIndex(w.data, src.Index()))
	}
	wg.Wait()
}
