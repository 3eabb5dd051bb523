package credentials

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// TestCheckJWT runs the JWT lines of THREATS.md through Checker.Check,
// each attack beside an allowed control case. Every case is checked
// twice: the second answer may come from the token cache and must be the
// same.
func TestCheckJWT(t *testing.T) {
	w := newJWTWorld(t)
	k := w.k
	rs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodRS256, k.rsaA, "rsa-a", c) }
	kc := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodRS256, k.rsaB, "kc-1", c) }
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, k.hmac, "", c) }
	shared := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodES256, k.ec, "shared-1", c) }
	good := rs(mainClaims())
	goodParts := strings.Split(good, ".")
	// The good token with a signature whose unused trailing bits are set:
	// it decodes to the same bytes unless decoding is strict.
	const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	respelled := good[:len(good)-1] + string(b64url[strings.IndexByte(b64url, good[len(good)-1])^1])

	// The issuer's RSA public key as an HMAC secret, in the forms a key
	// confusion attack would try.
	pkix, err := x509.MarshalPKIXPublicKey(&k.rsaA.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(&k.rsaA.PublicKey)
	pemPKIX := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pemPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})
	mixed := func(kv ...any) jwt.MapClaims {
		return mainClaims(append([]any{"iss", issMixed, "aud", deleted{}}, kv...)...)
	}

	// An alg-none token: header alg, the main claims, and sig.
	none := func(alg, sig string) string {
		return rawJWT(map[string]string{"alg": alg, "typ": "JWT"}, mainClaims(), sig)
	}
	withCrit := jwt.NewWithClaims(jwt.SigningMethodRS256, mainClaims())
	withCrit.Header["kid"], withCrit.Header["crit"] = "rsa-a", []string{"exp"}
	critTok, err := withCrit.SignedString(k.rsaA)
	if err != nil {
		t.Fatal(err)
	}
	nullKid := jwt.NewWithClaims(jwt.SigningMethodRS256, mainClaims())
	nullKid.Header["kid"] = nil
	nullKidTok, err := nullKid.SignedString(k.rsaA)
	if err != nil {
		t.Fatal(err)
	}

	// Tokens around the Authorization limit of 8 KiB ("Bearer " + token).
	var nearLimit, overLimit string
	for n := 5000; overLimit == ""; n++ {
		tok := rs(mainClaims("pad", strings.Repeat("p", n)))
		if len("Bearer ")+len(tok) <= maxAuthHeader {
			nearLimit = tok
		} else {
			overLimit = tok
		}
	}
	if nearLimit == "" || len("Bearer ")+len(nearLimit) < maxAuthHeader-4 {
		t.Fatalf("test setup: token of %d bytes is not near the limit", len(nearLimit))
	}
	// Over the limit by itself (where no header limit applies first).
	hugeTok := rs(mainClaims("pad", strings.Repeat("p", 6200)))
	if len(hugeTok) <= maxAuthHeader {
		t.Fatalf("test setup: token of %d bytes is not over 8 KiB", len(hugeTok))
	}
	cookiePolicy := &Policy{Methods: AllMethods, CookieKey: "jwt"}

	route := func(p Policy) *Policy { return &p }
	tests := []struct {
		name   string
		r      Request
		policy *Policy // nil: DefaultPolicy
		code   DenyCode
		reason string // substring of Decision.Reason
	}{
		{name: "RS256 control", r: bearer(good)},
		{name: "ES256 control", r: bearer(mint(t, jwt.SigningMethodES256, k.ec, "ec-1", mainClaims()))},
		{name: "EdDSA control", r: bearer(mint(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", mainClaims()))},
		{name: "unknown iss", r: bearer(rs(mainClaims("iss", "https://evil.test"))), code: TokenNotValid, reason: "no issuer"},
		{name: "iss of the wrong type", r: bearer(rs(mainClaims("iss", 7))), code: TokenNotValid, reason: "iss is not a string"},
		{name: "signature respelled with trailing bits", r: bearer(respelled), code: TokenNotValid, reason: "malformed"},
		{name: "signed by another key of the set under this kid", r: bearer(mint(t, jwt.SigningMethodRS256, k.rsaB, "rsa-a", mainClaims())), code: TokenNotValid, reason: "signature"},

		// alg none.
		{name: "alg none", r: bearer(none("none", "")), code: TokenNotValid, reason: "alg none"},
		{name: "alg None", r: bearer(none("None", "")), code: TokenNotValid, reason: "alg none"},
		{name: "alg NONE", r: bearer(none("NONE", "")), code: TokenNotValid, reason: "alg none"},
		{name: "alg none with a signature", r: bearer(none("none", goodParts[2])), code: TokenNotValid, reason: "alg none"},
		{name: "alg none, good token's segments", r: bearer(b64([]byte(`{"alg":"none"}`)) + "." + goodParts[1] + "."), code: TokenNotValid, reason: "alg none"},
		{name: "no alg", r: bearer(rawJWT(`{"typ":"JWT"}`, mainClaims(), goodParts[2])), code: TokenNotValid, reason: "no alg"},
		{name: "alg of the wrong type", r: bearer(rawJWT(`{"alg":["RS256"]}`, mainClaims(), goodParts[2])), code: TokenNotValid, reason: "header"},
		{name: "unknown alg", r: bearer(rawJWT(`{"alg":"XS256"}`, mainClaims(), goodParts[2])), code: TokenNotValid, reason: "invalid token"},

		// Key confusion: the RSA public key as an HMAC secret.
		{name: "HS256 with PEM public key, issuer RS256", r: bearer(mint(t, jwt.SigningMethodHS256, pemPKIX, "rsa-a", mainClaims())), code: TokenNotValid, reason: "HS256 is not allowed"},
		{name: "HS256 with DER public key, issuer RS256", r: bearer(mint(t, jwt.SigningMethodHS256, pkix, "", mainClaims())), code: TokenNotValid, reason: "HS256 is not allowed"},
		{name: "HS256 with PEM public key, issuer RS256+HS256", r: bearer(mint(t, jwt.SigningMethodHS256, pemPKIX, "", mixed())), code: TokenNotValid, reason: "no HS256 key"},
		{name: "HS256 with PKCS1 PEM public key, issuer RS256+HS256", r: bearer(mint(t, jwt.SigningMethodHS256, pemPKCS1, "", mixed())), code: TokenNotValid, reason: "no HS256 key"},
		{name: "HS256 with DER public key, issuer RS256+HS256", r: bearer(mint(t, jwt.SigningMethodHS256, pkix, "", mixed())), code: TokenNotValid, reason: "no HS256 key"},
		{name: "HS256 with PKCS1 DER public key, issuer RS256+HS256", r: bearer(mint(t, jwt.SigningMethodHS256, pkcs1, "", mixed())), code: TokenNotValid, reason: "no HS256 key"},
		{name: "RS256 control, issuer RS256+HS256", r: bearer(mint(t, jwt.SigningMethodRS256, k.rsaA, "", mixed()))},

		// The allowlist.
		{name: "RS384 not allowed", r: bearer(mint(t, jwt.SigningMethodRS384, k.rsaA, "rsa-a", mainClaims())), code: TokenNotValid, reason: "RS384 is not allowed"},
		{name: "PS256 not allowed", r: bearer(mint(t, jwt.SigningMethodPS256, k.rsaA, "rsa-a", mainClaims())), code: TokenNotValid, reason: "PS256 is not allowed"},
		{name: "HS256 with the django secret on the RS256 issuer", r: bearer(mint(t, jwt.SigningMethodHS256, k.hmac, "", mainClaims())), code: TokenNotValid, reason: "HS256 is not allowed"},

		// Times (leeway 30s).
		{name: "missing exp", r: bearer(rs(mainClaims("exp", deleted{}))), code: TokenNotValid, reason: "exp"},
		{name: "exp of the wrong type", r: bearer(rs(mainClaims("exp", "9999999999"))), code: TokenNotValid, reason: "exp"},
		{name: "expired 31s ago", r: bearer(rs(mainClaims("exp", t0.Add(-31*time.Second).Unix()))), code: TokenNotValid, reason: "expired"},
		{name: "expired 30s ago (leeway is exclusive)", r: bearer(rs(mainClaims("exp", t0.Add(-30*time.Second).Unix()))), code: TokenNotValid, reason: "expired"},
		{name: "expired 29s ago, within leeway", r: bearer(rs(mainClaims("exp", t0.Add(-29*time.Second).Unix())))},
		{name: "nbf 31s ahead", r: bearer(rs(mainClaims("nbf", t0.Add(31*time.Second).Unix()))), code: TokenNotValid, reason: "nbf"},
		{name: "nbf 29s ahead, within leeway", r: bearer(rs(mainClaims("nbf", t0.Add(29*time.Second).Unix())))},
		{name: "iat 31s ahead", r: bearer(rs(mainClaims("iat", t0.Add(31*time.Second).Unix()))), code: TokenNotValid, reason: "iat"},
		{name: "iat 29s ahead, within leeway", r: bearer(rs(mainClaims("iat", t0.Add(29*time.Second).Unix())))},

		// Audiences (issuer: api, api2).
		{name: "aud empty string", r: bearer(rs(mainClaims("aud", ""))), code: TokenNotValid, reason: "aud"},
		{name: "aud empty array", r: bearer(rs(mainClaims("aud", []string{}))), code: TokenNotValid, reason: "aud"},
		{name: "aud missing", r: bearer(rs(mainClaims("aud", deleted{}))), code: TokenNotValid, reason: "aud"},
		{name: "aud wrong", r: bearer(rs(mainClaims("aud", "other"))), code: TokenNotValid, reason: "audience"},
		{name: "aud wrong array", r: bearer(rs(mainClaims("aud", []string{"other", "apix"}))), code: TokenNotValid, reason: "audience"},
		{name: "aud number", r: bearer(rs(mainClaims("aud", 42))), code: TokenNotValid, reason: "aud"},
		{name: "aud object", r: bearer(rs(mainClaims("aud", map[string]string{"api": "api"}))), code: TokenNotValid, reason: "aud"},
		{name: "aud array with a number", r: bearer(rs(mainClaims("aud", []any{"api", 42}))), code: TokenNotValid, reason: "aud"},
		{name: "aud second of two", r: bearer(rs(mainClaims("aud", []string{"other", "api2"})))},
		{name: "aud second audience", r: bearer(rs(mainClaims("aud", "api2")))},
		// Issuers without audiences still refuse an aud of the wrong type.
		{name: "aud number, issuer without audiences", r: bearer(kc(keycloakClaims("aud", 42))), code: TokenNotValid, reason: "aud"},
		{name: "aud true, issuer without audiences", r: bearer(kc(keycloakClaims("aud", true))), code: TokenNotValid, reason: "aud"},
		{name: "aud any string, issuer without audiences", r: bearer(kc(keycloakClaims()))},

		// Key IDs.
		{name: "unknown kid", r: bearer(mint(t, jwt.SigningMethodRS256, k.rsaA, "rsa-z", mainClaims())), code: TokenNotValid, reason: "no RS256 key with kid"},
		{name: "path kid", r: bearer(mint(t, jwt.SigningMethodRS256, k.rsaA, "../../etc/passwd", mainClaims())), code: TokenNotValid, reason: "no RS256 key with kid"},
		{name: "SQL kid", r: bearer(mint(t, jwt.SigningMethodRS256, k.rsaA, "' OR 1=1 --", mainClaims())), code: TokenNotValid, reason: "no RS256 key with kid"},
		{name: "kid of an EC key on an RS256 token", r: bearer(mint(t, jwt.SigningMethodRS256, k.rsaA, "ec-1", mainClaims())), code: TokenNotValid, reason: "no RS256 key with kid"},
		{name: "kid of the wrong type", r: bearer(rawJWT(`{"alg":"RS256","kid":1}`, mainClaims(), goodParts[2])), code: TokenNotValid, reason: "header"},
		{name: "kid null, good signature", r: bearer(nullKidTok), code: TokenNotValid, reason: "header"},
		{name: "no kid, tried against the RSA keys", r: bearer(mint(t, jwt.SigningMethodRS256, k.rsaB, "", mainClaims()))},

		// crit.
		{name: "crit header, good signature", r: bearer(critTok), code: TokenNotValid, reason: "crit"},

		// Token types.
		{name: "simplejwt refresh token", r: bearer(hs(djangoClaims("token_type", "refresh"))), code: TokenNotValid, reason: "token_type"},
		{name: "simplejwt token without token_type", r: bearer(hs(djangoClaims("token_type", deleted{}))), code: TokenNotValid, reason: "token_type"},
		{name: "simplejwt access token", r: bearer(hs(djangoClaims()))},
		{name: "keycloak refresh token", r: bearer(kc(keycloakClaims("typ", "Refresh"))), code: TokenNotValid, reason: "typ"},
		{name: "keycloak ID token", r: bearer(kc(keycloakClaims("typ", "ID"))), code: TokenNotValid, reason: "typ"},
		{name: "keycloak access token", r: bearer(kc(keycloakClaims()))},

		// Revocations.
		{name: "revoked jti", r: bearer(rs(mainClaims("jti", "jti-revoked"))), code: TokenNotValid, reason: "revoked"},
		{name: "lapsed revocation", r: bearer(rs(mainClaims("jti", "jti-lapsed")))},
		{name: "other jti", r: bearer(rs(mainClaims("jti", "jti-fine")))},
		{name: "jti of the wrong type", r: bearer(rs(mainClaims("jti", 1))), code: TokenNotValid, reason: "jti"},

		// Token versions (cl_ver is at 3).
		{name: "ver below, client by sub", r: bearer(rs(mainClaims("sub", "cl_ver", "ver", 2))), code: TokenNotValid, reason: "token version 2"},
		{name: "ver below, client by client_id", r: bearer(rs(mainClaims("client_id", "cl_ver", "ver", 2))), code: TokenNotValid, reason: "token version 2"},
		{name: "ver below, client by azp", r: bearer(rs(mainClaims("azp", "cl_ver", "ver", 2))), code: TokenNotValid, reason: "token version 2"},
		{name: "ver missing counts as 0", r: bearer(rs(mainClaims("sub", "cl_ver"))), code: TokenNotValid, reason: "token version 0"},
		{name: "ver equal", r: bearer(rs(mainClaims("sub", "cl_ver", "ver", 3)))},
		{name: "ver above", r: bearer(rs(mainClaims("azp", "cl_ver", "ver", 4)))},
		{name: "ver string", r: bearer(rs(mainClaims("sub", "cl_ver", "ver", "3"))), code: TokenNotValid, reason: "ver"},
		{name: "ver fraction", r: bearer(rs(mainClaims("sub", "cl_ver", "ver", 3.5))), code: TokenNotValid, reason: "ver"},
		{name: "ver of a client of another tenant is not checked", r: bearer(rs(mainClaims("sub", "cl_globex", "ver", "x")))},

		// Size.
		{name: "token just under 8 KiB", r: bearer(nearLimit)},
		{name: "authorization over 8 KiB", r: bearer(overLimit), code: NotAuthenticated, reason: "8 KiB"},
		// A JWT counts only as Authorization: Bearer; elsewhere it is an
		// API key, and a malformed one.
		{name: "token over 8 KiB in a cookie", r: Request{CookieKey: hugeTok, HasCookieKey: true}, policy: cookiePolicy, code: InvalidAPIKey},
		{name: "token in a cookie", r: Request{CookieKey: good, HasCookieKey: true}, policy: cookiePolicy, code: InvalidAPIKey},
		{name: "token in X-API-Key", r: Request{APIKey: good, HasAPIKey: true}, code: InvalidAPIKey},
		{name: "token as Authorization: Token", r: Request{Authorization: "Token " + good, HasAuthorization: true}, code: InvalidAPIKey},
		{name: "token as Authorization: bearer (any case)", r: Request{Authorization: "bEaReR " + good, HasAuthorization: true}},

		// Subjects.
		{name: "numeric subject", r: bearer(hs(djangoClaims("user_id", 7)))},
		{name: "fractional subject", r: bearer(hs(djangoClaims("user_id", 4.5))), code: TokenNotValid, reason: "subject"},
		{name: "missing subject", r: bearer(rs(mainClaims("sub", deleted{}))), code: TokenNotValid, reason: "subject"},
		{name: "empty subject", r: bearer(rs(mainClaims("sub", ""))), code: TokenNotValid, reason: "subject"},
		{name: "subject with a newline", r: bearer(rs(mainClaims("sub", "a\nx-tenant-id: victim"))), code: TokenNotValid, reason: "subject"},
		{name: "subject of the wrong type", r: bearer(rs(mainClaims("sub", true))), code: TokenNotValid, reason: "subject"},

		// Tenants.
		{name: "tenant claim acme", r: bearer(shared(mainClaims("iss", issShared, "aud", deleted{}, "tenant", "acme")))},
		{name: "tenant claim globex", r: bearer(shared(mainClaims("iss", issShared, "aud", deleted{}, "tenant", "globex")))},
		{name: "tenant claim of no issuer", r: bearer(shared(mainClaims("iss", issShared, "aud", deleted{}, "tenant", "initech"))), code: TokenNotValid, reason: "tenant"},
		{name: "tenant claim of a disabled tenant", r: bearer(shared(mainClaims("iss", issShared, "aud", deleted{}, "tenant", "dead"))), code: TokenNotValid, reason: "tenant"},
		{name: "tenant claim missing", r: bearer(shared(mainClaims("iss", issShared, "aud", deleted{}))), code: TokenNotValid, reason: "tenant"},
		{name: "tenant claim not a string", r: bearer(shared(mainClaims("iss", issShared, "aud", deleted{}, "tenant", []string{"acme"}))), code: TokenNotValid, reason: "tenant"},
		{name: "issuer of a disabled tenant", r: bearer(rs(mainClaims("iss", issDead, "aud", deleted{}))), code: TokenNotValid, reason: "no issuer"},
		{name: "disabled issuer", r: bearer(rs(mainClaims("iss", issOff, "aud", deleted{}))), code: TokenNotValid, reason: "no issuer"},

		// Clients.
		{name: "disabled client", r: bearer(rs(mainClaims("sub", "cl_off"))), code: TokenNotValid, reason: "disabled"},
		{name: "disabled client by azp", r: bearer(rs(mainClaims("azp", "cl_off"))), code: TokenNotValid, reason: "disabled"},
		{name: "client of a disabled tenant is no client of acme", r: bearer(rs(mainClaims("sub", "cl_dead")))},
		{name: "client allowed_cidrs, inside", r: from(bearer(rs(mainClaims("sub", "cl_net4"))), "10.1.2.3")},
		{name: "client allowed_cidrs, outside", r: from(bearer(rs(mainClaims("sub", "cl_net4", "jti", "o"))), "11.0.0.1"), code: IPNotAllowed},

		// Routes.
		{name: "route scope in scope string", r: bearer(good), policy: route(Policy{Methods: AllMethods, Scopes: "read:projects,write:projects"})},
		{name: "route scope missing from scope string", r: bearer(good), policy: route(Policy{Methods: AllMethods, Scopes: "read:projects,admin"}), code: InsufficientScope, reason: "admin"},
		{name: "route scope in scp array", r: bearer(rs(mainClaims("scope", deleted{}, "scp", []string{"read:projects"}))), policy: route(Policy{Methods: AllMethods, Scopes: "read:projects"})},
		{name: "route scope missing from scp array", r: bearer(rs(mainClaims("scope", deleted{}, "scp", []string{"read:projects"}))), policy: route(Policy{Methods: AllMethods, Scopes: "write:projects"}), code: InsufficientScope},
		{name: "route scope, token without scopes", r: bearer(rs(mainClaims("scope", deleted{}))), policy: route(Policy{Methods: AllMethods, Scopes: "read:projects"}), code: InsufficientScope},
		{name: "route scope granted by a wildcard token scope", r: bearer(rs(mainClaims("scope", "read:*"))), policy: route(Policy{Methods: AllMethods, Scopes: "read:projects"})},
		{name: "client scopes when the token has none", r: bearer(rs(mainClaims("sub", "cl_ver", "ver", 3, "scope", deleted{}))), policy: route(Policy{Methods: AllMethods, Scopes: "read:projects"})},
		{name: "route role in realm_access.roles", r: bearer(kc(keycloakClaims())), policy: route(Policy{Methods: AllMethods, Roles: "reader"})},
		{name: "route role missing from realm_access.roles", r: bearer(kc(keycloakClaims())), policy: route(Policy{Methods: AllMethods, Roles: "admin"}), code: InsufficientScope, reason: "role admin"},
		{name: "route role in main issuer's nested roles", r: bearer(rs(mainClaims("realm_access", map[string]any{"roles": "writer reader"}))), policy: route(Policy{Methods: AllMethods, Roles: "writer"})},
		{name: "route role, issuer without roles claim", r: bearer(hs(djangoClaims("roles", []string{"admin"}))), policy: route(Policy{Methods: AllMethods, Roles: "admin"}), code: InsufficientScope},
		{name: "route tenant other", r: bearer(good), policy: route(Policy{Methods: AllMethods, Tenant: "globex"}), code: Forbidden},
		{name: "route tenant own", r: bearer(good), policy: route(Policy{Methods: AllMethods, Tenant: "acme"})},
		{name: "route tenant, token of globex via tenant claim", r: bearer(shared(mainClaims("iss", issShared, "aud", deleted{}, "tenant", "globex", "jti", "g2"))), policy: route(Policy{Methods: AllMethods, Tenant: "acme"}), code: Forbidden},
		{name: "route without jwt", r: bearer(good), policy: route(Policy{Methods: MethodAPIKey | MethodHMAC}), code: NotAuthenticated, reason: "jwt not accepted"},
		{name: "route jwt only", r: bearer(good), policy: route(Policy{Methods: MethodJWT})},
		{name: "API key and JWT", r: Request{APIKey: w.keys["acme"], HasAPIKey: true, Authorization: "Bearer " + good, HasAuthorization: true}, code: AmbiguousCredentials},
		{name: "JWT in X-API-Key and Authorization", r: Request{APIKey: good, HasAPIKey: true, Authorization: "Bearer " + good, HasAuthorization: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			r.Policy = DefaultPolicy
			if tt.policy != nil {
				r.Policy = *tt.policy
			}
			for _, what := range []string{"first", "second"} {
				d := w.check(t, &r)
				if d.Code != tt.code || !strings.Contains(d.Reason, tt.reason) {
					t.Fatalf("%s Check() = %q (%s), want %q (%s)", what, d.Code, d.Reason, tt.code, tt.reason)
				}
				if tt.code != AmbiguousCredentials && tt.code != InvalidAPIKey && !strings.Contains(d.Reason, "8 KiB") && d.Method != MethodJWT {
					t.Errorf("Method = %v, want jwt", d.Method)
				}
				if d.Allowed() && (d.Identity == nil || d.Identity.Method != "jwt" || d.Identity.KeyID != "" || d.Issuer == "") {
					t.Errorf("allowed with Identity %+v, Issuer %q", d.Identity, d.Issuer)
				}
				if d.Code == TokenNotValid && d.Identity != nil {
					t.Errorf("token_not_valid with an identity %+v", d.Identity)
				}
			}
		})
	}
}

// TestCheckJWTIdentity compares the identity of allowed tokens.
func TestCheckJWTIdentity(t *testing.T) {
	w := newJWTWorld(t)
	k := w.k
	tests := []struct {
		name   string
		tok    string
		want   Identity
		issuer string
	}{
		{"plain", mint(t, jwt.SigningMethodRS256, k.rsaA, "rsa-a", mainClaims()),
			Identity{TenantID: "acme", Subject: "user-1", Method: "jwt", Scopes: "read:projects write:projects"}, "acme/main"},
		{"client by sub, client's scopes", mint(t, jwt.SigningMethodES256, k.ec, "ec-1", mainClaims("sub", "cl_ver", "ver", 3, "scope", deleted{})),
			Identity{TenantID: "acme", Subject: "cl_ver", ClientID: "cl_ver", Method: "jwt", Scopes: "read:*"}, "acme/main"},
		{"client by client_id, token's scopes", mint(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", mainClaims("client_id", "cl_acme", "scp", []string{"a", "b c", "d"}, "scope", deleted{})),
			Identity{TenantID: "acme", Subject: "user-1", ClientID: "cl_acme", Method: "jwt", Scopes: "a d"}, "acme/main"},
		{"numeric subject", mint(t, jwt.SigningMethodHS256, k.hmac, "", djangoClaims()),
			Identity{TenantID: "acme", Subject: "42", Method: "jwt"}, "acme/django"},
		{"keycloak", mint(t, jwt.SigningMethodRS256, k.rsaB, "kc-1", keycloakClaims()),
			Identity{TenantID: "acme", Subject: "f9a3c1de-5b7e-4d2a-9c11-0e6f2b8d4a77", Method: "jwt", Scopes: "openid profile email"}, "acme/keycloak"},
		{"tenant claim", mint(t, jwt.SigningMethodES256, k.ec, "shared-1", mainClaims("iss", issShared, "aud", deleted{}, "tenant", "globex", "scope", "x")),
			Identity{TenantID: "globex", Subject: "user-1", Method: "jwt", Scopes: "x"}, "globex/shared"},
		{"scope entries that could not be names are dropped", mint(t, jwt.SigningMethodRS256, k.rsaA, "rsa-a", mainClaims("scope", "ok b\"ad c,d fine")),
			Identity{TenantID: "acme", Subject: "user-1", Method: "jwt", Scopes: "ok fine"}, "acme/main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bearer(tt.tok)
			d := w.check(t, &r)
			if !d.Allowed() {
				t.Fatalf("Check() = %q (%s)", d.Code, d.Reason)
			}
			if diff := cmp.Diff(&tt.want, d.Identity); diff != "" {
				t.Errorf("Identity (-want +got):\n%s", diff)
			}
			if d.Issuer != tt.issuer || d.Source != FromAuthorization || d.Method != MethodJWT {
				t.Errorf("Issuer, Source, Method = %q, %v, %v", d.Issuer, d.Source, d.Method)
			}
		})
	}
}

// TestCheckJWTKeySelection: each token picks its key by kid; a token
// without kid is tried against at most four keys of its family.
func TestCheckJWTKeySelection(t *testing.T) {
	k := testJWTKeys()
	rsaA, rsaB := &k.rsaA.PublicKey, &k.rsaB.PublicKey
	edPub := k.ed.Public().(ed25519.PublicKey)
	newChecker := func(t *testing.T, algs []string, keys ...JWK) *world {
		w := newWorld(t)
		w.data.Issuers = []Issuer{{Tenant: "acme", Name: "set", Issuer: "https://set.test", Algorithms: algs, JWKS: jwks(keys...)}}
		if err := w.data.Issuers[0].Normalize("", false); err != nil {
			t.Fatal(err)
		}
		w.src.idx = BuildIndex(w.data, nil)
		return w
	}
	claims := jwt.MapClaims{"iss": "https://set.test", "sub": "s", "exp": t0.Add(time.Hour).Unix()}
	expect := func(t *testing.T, w *world, tok string, allow bool) {
		t.Helper()
		r := bearer(tok)
		if d := w.check(t, &r); d.Allowed() != allow {
			t.Errorf("Check() = %q (%s), want allowed %v", d.Code, d.Reason, allow)
		}
	}

	t.Run("kid picks the key", func(t *testing.T) {
		w := newChecker(t, []string{"RS256", "ES256", "EdDSA"},
			rsaJWK(rsaA, "a", ""), rsaJWK(rsaB, "b", ""), ecJWK(&k.ec.PublicKey, "e"), edJWK(edPub, "d"))
		for _, tc := range []struct {
			m   jwt.SigningMethod
			key any
			kid string
			ok  bool
		}{
			{jwt.SigningMethodRS256, k.rsaA, "a", true},
			{jwt.SigningMethodRS256, k.rsaB, "b", true},
			{jwt.SigningMethodRS256, k.rsaA, "b", false},
			{jwt.SigningMethodRS256, k.rsaB, "a", false},
			{jwt.SigningMethodES256, k.ec, "e", true},
			{jwt.SigningMethodES256, k.ec, "a", false},
			{jwt.SigningMethodEdDSA, k.ed, "d", true},
			{jwt.SigningMethodEdDSA, k.ed, "e", false},
			// Without kid: tried against the keys of the family.
			{jwt.SigningMethodRS256, k.rsaA, "", true},
			{jwt.SigningMethodRS256, k.rsaB, "", true},
			{jwt.SigningMethodES256, k.ec, "", true},
			{jwt.SigningMethodEdDSA, k.ed, "", true},
		} {
			expect(t, w, mint(t, tc.m, tc.key, tc.kid, claims), tc.ok)
		}
	})

	t.Run("at most four keys without kid", func(t *testing.T) {
		// Four keys of the family come before the one that signed: it is
		// never tried. With one fewer it is.
		b := rsaJWK(rsaB, "", "")
		tok := mint(t, jwt.SigningMethodRS256, k.rsaA, "", claims)
		expect(t, newChecker(t, []string{"RS256"}, b, b, b, b, rsaJWK(rsaA, "", "")), tok, false)
		expect(t, newChecker(t, []string{"RS256"}, b, b, b, rsaJWK(rsaA, "", "")), tok, true)
		// Keys of other families do not count.
		e := ecJWK(&k.ec.PublicKey, "")
		expect(t, newChecker(t, []string{"RS256", "ES256"}, e, e, e, e, b, rsaJWK(rsaA, "", "")), tok, true)
		// With kid, the key is found wherever it is.
		tok = mint(t, jwt.SigningMethodRS256, k.rsaA, "a", claims)
		expect(t, newChecker(t, []string{"RS256"}, b, b, b, b, b, b, rsaJWK(rsaA, "a", "")), tok, true)
	})

	t.Run("JWK alg pins the algorithm", func(t *testing.T) {
		w := newChecker(t, []string{"RS256", "RS384"}, rsaJWK(rsaA, "a", "RS384"))
		expect(t, w, mint(t, jwt.SigningMethodRS256, k.rsaA, "a", claims), false)
		expect(t, w, mint(t, jwt.SigningMethodRS256, k.rsaA, "", claims), false)
		expect(t, w, mint(t, jwt.SigningMethodRS384, k.rsaA, "a", claims), true)
	})

	t.Run("P-384 key does not verify ES256", func(t *testing.T) {
		w := newChecker(t, []string{"ES256", "ES384"}, ecJWK(&k.ec384.PublicKey, "p384"))
		expect(t, w, mint(t, jwt.SigningMethodES256, k.ec, "p384", claims), false)
		expect(t, w, mint(t, jwt.SigningMethodES256, k.ec, "", claims), false)
		expect(t, w, mint(t, jwt.SigningMethodES384, k.ec384, "p384", claims), true)
	})
}

// TestCheckJWTNumericSubject: simplejwt's user_id 42 is the subject "42".
func TestCheckJWTNumericSubject(t *testing.T) {
	w := newJWTWorld(t)
	for _, tc := range []struct {
		id   any
		want string
	}{{42, "42"}, {0, "0"}, {-1, "-1"}, {int64(1) << 53, "9007199254740992"}, {"u-7", "u-7"}} {
		r := bearer(mint(t, jwt.SigningMethodHS256, w.k.hmac, "", djangoClaims("user_id", tc.id)))
		d := w.check(t, &r)
		if !d.Allowed() || d.Identity.Subject != tc.want {
			t.Errorf("user_id %v: %q (%s) subject %v", tc.id, d.Code, d.Reason, d.Identity)
		}
	}
}

// TestCheckJWTIPNotAllowed: a token of a client with allowed_cidrs from
// outside them is 403 ip_not_allowed, from inside allowed.
func TestCheckJWTIPNotAllowed(t *testing.T) {
	w := newJWTWorld(t)
	tok := mint(t, jwt.SigningMethodRS256, w.k.rsaA, "rsa-a", mainClaims("client_id", "cl_net4"))
	for ip, want := range map[string]DenyCode{"10.0.0.1": Allow, "192.168.1.5": Allow, "192.168.1.6": IPNotAllowed, "2001:db8::1": IPNotAllowed} {
		r := bearer(tok)
		r.SourceIP = netip.MustParseAddr(ip)
		if d := w.check(t, &r); d.Code != want {
			t.Errorf("from %s: %q (%s), want %q", ip, d.Code, d.Reason, want)
		}
	}
	r := bearer(tok)
	if d := w.check(t, &r); d.Code != IPNotAllowed {
		t.Errorf("without source address: %q", d.Code)
	}
}
