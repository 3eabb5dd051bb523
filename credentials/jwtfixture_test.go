package credentials

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The JWT tests verify tokens minted here. The keys tokens are signed
// with are fixed: the RSA keys are test-only keys in testdata/jwt
// (made once with openssl genpkey), the EC, Ed25519 and HMAC keys come
// from fixed seeds. Fixed keys keep the real tokens of the fuzz seed
// corpora valid from run to run. Keys that only need to exist (and be
// refused) are generated once per test binary.
type jwtKeys struct {
	rsaA, rsaB *rsa.PrivateKey
	ec         *ecdsa.PrivateKey // P-256
	ed         ed25519.PrivateKey
	hmac       []byte

	rsa1024 *rsa.PrivateKey
	ec384   *ecdsa.PrivateKey
}

var testJWTKeys = sync.OnceValue(func() *jwtKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	loadRSA := func(name string) *rsa.PrivateKey {
		b, err := os.ReadFile("testdata/jwt/" + name)
		must(err)
		blk, _ := pem.Decode(b)
		if blk == nil {
			panic("no PEM block in " + name)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		must(err)
		return k.(*rsa.PrivateKey)
	}
	seed := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	k := &jwtKeys{rsaA: loadRSA("rsa2048-a.pem"), rsaB: loadRSA("rsa2048-b.pem")}
	var err error
	k.ec, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), seed("keygate test P-256 key"))
	must(err)
	k.ed = ed25519.NewKeyFromSeed(seed("keygate test Ed25519 key"))
	k.hmac = []byte("keygate test HMAC secret, 32+ bytes long")
	k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	return k
})

var b64 = base64.RawURLEncoding.EncodeToString

func rsaJWK(pub *rsa.PublicKey, kid, alg string) JWK {
	return JWK{Kty: "RSA", Kid: kid, Alg: alg, N: b64(pub.N.Bytes()), E: b64(big.NewInt(int64(pub.E)).Bytes())}
}

func ecJWK(pub *ecdsa.PublicKey, kid string) JWK {
	b, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	n := (len(b) - 1) / 2
	return JWK{Kty: "EC", Crv: pub.Curve.Params().Name, Kid: kid, X: b64(b[1 : 1+n]), Y: b64(b[1+n:])}
}

func edJWK(pub ed25519.PublicKey, kid string) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", Kid: kid, X: b64(pub)}
}

func octJWK(secret []byte, kid string) JWK { return JWK{Kty: "oct", Kid: kid, K: b64(secret)} }

func jwks(keys ...JWK) *JWKS { return &JWKS{Keys: keys} }

func mustKeySet(t testing.TB, keys ...JWK) *KeySet {
	t.Helper()
	ks, err := NewKeySet(jwks(keys...))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// mint signs claims with key under m, naming kid when it is not empty.
func mint(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("minting %s token: %v", m.Alg(), err)
	}
	return s
}

// rawJWT joins the base64url of header and claims (JSON-encoded unless
// they are strings) and sig as a compact JWS.
func rawJWT(header, claims any, sig string) string {
	enc := func(v any) string {
		if s, ok := v.(string); ok {
			return b64([]byte(s))
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return b64(b)
	}
	return enc(header) + "." + enc(claims) + "." + sig
}

// deleted, as a value in claimsOf, removes the claim.
type deleted struct{}

// claimsOf returns a copy of base changed by the name/value pairs kv.
func claimsOf(base jwt.MapClaims, kv ...any) jwt.MapClaims {
	c := jwt.MapClaims{}
	for k, v := range base {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		name := kv[i].(string)
		if _, ok := kv[i+1].(deleted); ok {
			delete(c, name)
			continue
		}
		c[name] = kv[i+1]
	}
	return c
}

// Issuers of the JWT world.
const (
	issMain     = "https://idp.acme.test"
	issKeycloak = "https://kc.acme.test/realms/acme"
	issMixed    = "https://mixed.acme.test"
	issShared   = "https://shared.idp.test"
	issDead     = "https://dead.test"
	issOff      = "https://off.acme.test"
	issRemote   = "https://remote.acme.test"
	remoteURI   = "https://remote.acme.test/.well-known/jwks.json"
	mainLeeway  = 30 * time.Second
)

// Standard claims of the world's issuers: valid at t0 for an hour.
func mainClaims(kv ...any) jwt.MapClaims {
	return claimsOf(jwt.MapClaims{
		"iss": issMain, "aud": "api", "sub": "user-1", "scope": "read:projects write:projects",
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(time.Hour).Unix(),
	}, kv...)
}

// djangoClaims are djangorestframework-simplejwt's: no iss, no aud, the
// user's numeric ID as subject.
func djangoClaims(kv ...any) jwt.MapClaims {
	return claimsOf(jwt.MapClaims{
		"token_type": "access", "user_id": 42, "jti": "4b1ad6c0e1f34c6b9a6e0d7a2f5c8e91",
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(5 * time.Minute).Unix(),
	}, kv...)
}

// keycloakClaims are a Keycloak access token's.
func keycloakClaims(kv ...any) jwt.MapClaims {
	return claimsOf(jwt.MapClaims{
		"iss": issKeycloak, "aud": "account", "sub": "f9a3c1de-5b7e-4d2a-9c11-0e6f2b8d4a77", "typ": "Bearer",
		"azp": "web", "scope": "openid profile email", "realm_access": map[string]any{"roles": []string{"reader", "offline_access"}},
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(5 * time.Minute).Unix(),
	}, kv...)
}

// fakeKeys is a KeySource made of function fields; it counts the calls.
type fakeKeys struct {
	KeysFunc       func(uri string) *KeySet
	RefreshFunc    func(ctx context.Context, uri string) *KeySet
	GenerationFunc func() uint64

	keysCalls, refreshCalls atomic.Int64
}

func (f *fakeKeys) Keys(uri string) *KeySet {
	f.keysCalls.Add(1)
	if f.KeysFunc == nil {
		return nil
	}
	return f.KeysFunc(uri)
}

func (f *fakeKeys) Refresh(ctx context.Context, uri string) *KeySet {
	f.refreshCalls.Add(1)
	if f.RefreshFunc == nil {
		return f.Keys(uri)
	}
	return f.RefreshFunc(ctx, uri)
}

func (f *fakeKeys) Generation() uint64 {
	if f.GenerationFunc == nil {
		return 0
	}
	return f.GenerationFunc()
}

// remoteKeys is the state behind a fakeKeys for remoteURI: a key set and
// a generation that tests change.
type remoteKeys struct {
	mu   sync.Mutex
	set  *KeySet
	next *KeySet // what Refresh finds (nil: set)
	gen  uint64
}

func (r *remoteKeys) fake() *fakeKeys {
	return &fakeKeys{
		KeysFunc: func(uri string) *KeySet {
			r.mu.Lock()
			defer r.mu.Unlock()
			if uri != remoteURI {
				return nil
			}
			return r.set
		},
		RefreshFunc: func(_ context.Context, uri string) *KeySet {
			r.mu.Lock()
			defer r.mu.Unlock()
			if uri != remoteURI {
				return nil
			}
			if r.next != nil {
				r.set, r.next = r.next, nil
				r.gen++
			}
			return r.set
		},
		GenerationFunc: func() uint64 { r.mu.Lock(); defer r.mu.Unlock(); return r.gen },
	}
}

func (r *remoteKeys) swap(set *KeySet, bumpGen bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set = set
	if bumpGen {
		r.gen++
	}
}

// jwtWorld is the world of the Checker tests plus JWT issuers, a
// jwks_uri issuer served by a fake KeySource, and the keys.
type jwtWorld struct {
	*world
	k      *jwtKeys
	remote *remoteKeys
	fake   *fakeKeys
}

func newJWTWorld(t testing.TB) *jwtWorld {
	k := testJWTKeys()
	w := &jwtWorld{world: newWorld(t), k: k}
	w.remote = &remoteKeys{set: mustKeySet(t, rsaJWK(&k.rsaA.PublicKey, "r-a", ""), ecJWK(&k.ec.PublicKey, "e-1")), gen: 1}
	w.fake = w.remote.fake()
	w.c.Keys = w.fake
	w.data.Clients = append(w.data.Clients,
		Client{ID: "cl_ver", Tenant: "acme", TokenVersion: 3, Scopes: []string{"read:*"}},
	)
	shared := func(tenant string) Issuer {
		return Issuer{Tenant: tenant, Name: "shared", Issuer: issShared, Algorithms: []string{"ES256"},
			TenantClaim: "tenant", JWKS: jwks(ecJWK(&k.ec.PublicKey, "shared-1"))}
	}
	w.data.Issuers = []Issuer{
		{Tenant: "acme", Name: "main", Issuer: issMain, Audiences: []string{"api", "api2"},
			Algorithms: []string{"RS256", "ES256", "EdDSA"}, Leeway: Duration(mainLeeway), RolesClaim: "realm_access.roles",
			JWKS: jwks(rsaJWK(&k.rsaA.PublicKey, "rsa-a", ""), rsaJWK(&k.rsaB.PublicKey, "rsa-b", ""),
				ecJWK(&k.ec.PublicKey, "ec-1"), edJWK(k.ed.Public().(ed25519.PublicKey), "ed-1"))},
		// djangorestframework-simplejwt: HS256 with the SECRET_KEY, no iss.
		{Tenant: "acme", Name: "django", Algorithms: []string{"HS256"}, SubjectClaim: "user_id",
			RequiredClaims: map[string]any{"token_type": "access"}, JWKS: jwks(octJWK(k.hmac, ""))},
		{Tenant: "acme", Name: "keycloak", Issuer: issKeycloak, Algorithms: []string{"RS256"},
			RequiredClaims: map[string]any{"typ": "Bearer"}, RolesClaim: "realm_access.roles",
			JWKS: jwks(rsaJWK(&k.rsaB.PublicKey, "kc-1", "RS256"))},
		// HS256 is allowed, but the only key is RSA.
		{Tenant: "acme", Name: "mixed", Issuer: issMixed, Algorithms: []string{"RS256", "HS256"},
			JWKS: jwks(rsaJWK(&k.rsaA.PublicKey, "", ""))},
		shared("acme"), shared("globex"),
		{Tenant: "dead", Name: "main", Issuer: issDead, Algorithms: []string{"RS256"}, JWKS: jwks(rsaJWK(&k.rsaA.PublicKey, "", ""))},
		{Tenant: "acme", Name: "off", Issuer: issOff, Algorithms: []string{"RS256"}, Disabled: true,
			JWKS: jwks(rsaJWK(&k.rsaA.PublicKey, "", ""))},
		{Tenant: "acme", Name: "remote", Issuer: issRemote, Algorithms: []string{"RS256", "ES256"}, JWKSURI: remoteURI},
	}
	for i := range w.data.Issuers {
		if err := w.data.Issuers[i].Normalize(fmt.Sprintf("issuers[%d]", i), false); err != nil {
			t.Fatalf("test setup: %v", err)
		}
	}
	w.data.Revocations = []Revocation{
		{JTI: "jti-revoked", ExpiresAt: t0.Add(24 * time.Hour)},
		// In the index (it expires after the real clock) but no longer
		// applies at t0.
		{JTI: "jti-lapsed", ExpiresAt: t0.Add(-time.Hour)},
	}
	w.src.idx = BuildIndex(w.data, nil)
	return w
}

func bearer(tok string) Request { return authz("Bearer " + tok) }
