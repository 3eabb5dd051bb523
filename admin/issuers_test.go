package admin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keygate/keygate/bolt"
	"github.com/keygate/keygate/credentials"
)

var b64 = base64.RawURLEncoding

// ecJWK returns the public JWK of a new P-256 key.
func ecJWK(t *testing.T, kid string) credentials.JWK {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.JWK{Kty: "EC", Kid: kid, Crv: "P-256", Use: "sig",
		X: b64.EncodeToString(k.X.FillBytes(make([]byte, 32))), Y: b64.EncodeToString(k.Y.FillBytes(make([]byte, 32)))}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// rsaJWK returns the public JWK of an RSA-2048 key (one per test binary:
// generating them is slow under -race).
func rsaJWK(t *testing.T, kid string) credentials.JWK {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return credentials.JWK{Kty: "RSA", Kid: kid, Alg: "RS256",
		N: b64.EncodeToString(rsaKey.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(rsaKey.E)).Bytes())}
}

// octJWK returns an oct JWK with a new 32-byte secret.
func octJWK(kid string) credentials.JWK {
	secret := make([]byte, 32)
	rand.Read(secret)
	return credentials.JWK{Kty: "oct", Kid: kid, K: b64.EncodeToString(secret)}
}

// testIssuer is an ES256/RS256 issuer with inline keys.
func testIssuer(t *testing.T, tenant, name string) credentials.Issuer {
	return credentials.Issuer{
		Tenant:         tenant,
		Name:           name,
		Issuer:         "https://idp.example/" + tenant,
		Audiences:      []string{"api", "https://api.example"},
		Algorithms:     []string{"ES256", "RS256"},
		JWKS:           &credentials.JWKS{Keys: []credentials.JWK{ecJWK(t, "ec-1"), rsaJWK(t, "rsa-1")}},
		Leeway:         credentials.Duration(30 * time.Second),
		TenantClaim:    "org",
		SubjectClaim:   "email",
		RolesClaim:     "realm_access.roles",
		RequiredClaims: map[string]any{"token_type": "access", "level": float64(2), "mfa": true},
	}
}

var ignoreTimes = cmpopts.IgnoreFields(credentials.Issuer{}, "CreatedAt", "UpdatedAt")

func TestIssuerCRUD(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustTenant("beta")

	want := testIssuer(t, "acme", "corp-idp")
	got, rev, err := e.client.PutIssuer(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, *got, ignoreTimes); diff != "" {
		t.Fatalf("PutIssuer answer (-sent +stored):\n%s", diff)
	}
	if rev == 0 || got.CreatedAt.IsZero() {
		t.Fatalf("PutIssuer: revision %d, created %v", rev, got.CreatedAt)
	}
	// An identical PUT keeps the revision.
	if _, rev2, err := e.client.PutIssuer(ctx, want); err != nil || rev2 != rev {
		t.Fatalf("identical PUT: rev %d → %d, %v", rev, rev2, err)
	}
	// GET: the same record, ETag the revision.
	st, hdr, b := e.raw("GET", "/v1/tenants/acme/issuers/corp-idp", "-default-", nil)
	if st != 200 || hdr.Get("ETag") != fmt.Sprintf(`"%d"`, rev) {
		t.Fatalf("GET: %d ETag %q %s", st, hdr.Get("ETag"), b)
	}
	one, err := e.client.GetIssuer(ctx, "acme", "corp-idp")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, one); diff != "" {
		t.Fatalf("GetIssuer differs from the PUT answer (-put +get):\n%s", diff)
	}

	// The body may omit tenant and name: the path names the issuer.
	st, hdr, b = e.raw("PUT", "/v1/tenants/beta/issuers/auth0", "-default-",
		[]byte(`{"issuer":"https://beta.eu.auth0.com/","audiences":["api"],"algorithms":["RS256"],"jwks_uri":"https://beta.eu.auth0.com/.well-known/jwks.json"}`))
	if st != 200 || hdr.Get("ETag") != fmt.Sprintf(`"%d"`, rev+1) || !bytes.Contains(b, []byte(fmt.Sprintf(`"revision":%d`, rev+1))) {
		t.Fatalf("PUT without tenant and name: %d ETag %q %s", st, hdr.Get("ETag"), b)
	}
	uri, err := e.client.GetIssuer(ctx, "beta", "auth0")
	if err != nil {
		t.Fatal(err)
	}
	if uri.Tenant != "beta" || uri.Name != "auth0" || uri.JWKS != nil || time.Duration(uri.JWKSRefresh) != credentials.DefaultJWKSRefresh {
		t.Fatalf("jwks_uri issuer = %+v", uri)
	}
	// Path and body must agree.
	for _, c := range []struct{ body, field string }{
		{`{"tenant":"beta","algorithms":["RS256"],"issuer":"https://x","jwks_uri":"https://x/jwks"}`, "tenant"},
		{`{"name":"other","algorithms":["RS256"],"issuer":"https://x","jwks_uri":"https://x/jwks"}`, "name"},
	} {
		st, _, b := e.raw("PUT", "/v1/tenants/acme/issuers/corp-idp", "-default-", []byte(c.body))
		if eb := errorJSON(t, b); st != 400 || eb.Field != c.field {
			t.Errorf("%s: %d %+v, want field %s", c.body, st, eb, c.field)
		}
	}

	// Lists: per tenant and all, ordered by tenant and name.
	e.mustIssuer(testIssuer(t, "acme", "a-first"))
	acme, err := e.client.ListIssuers(ctx, "acme")
	if err != nil || len(acme) != 2 || acme[0].Name != "a-first" || acme[1].Name != "corp-idp" {
		t.Fatalf("ListIssuers(acme) = %+v, %v", acme, err)
	}
	all, err := e.client.ListIssuers(ctx, "")
	if err != nil || len(all) != 3 || all[0].ID() != "acme/a-first" || all[2].ID() != "beta/auth0" {
		t.Fatalf("ListIssuers(all) = %+v, %v", all, err)
	}
	st, hdr, b = e.raw("GET", "/v1/issuers", "-default-", nil)
	if st != 200 || hdr.Get("ETag") == "" || !bytes.Contains(b, []byte(`"issuers":[`)) {
		t.Fatalf("GET /v1/issuers: %d %s", st, b)
	}
	e.mustTenant("empty")
	st, _, b = e.raw("GET", "/v1/tenants/empty/issuers", "-default-", nil)
	if st != 200 || !bytes.Contains(b, []byte(`"issuers":[]`)) {
		t.Fatalf("empty list: %d %s", st, b)
	}
	_, err = e.client.ListIssuers(ctx, "missing")
	apiErr(t, err, 404, "not_found")

	// An issuer needs its tenant.
	_, _, err = e.client.PutIssuer(ctx, testIssuer(t, "missing", "idp"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status/100 != 4 {
		t.Fatalf("issuer of an unknown tenant: %v", err)
	}

	// A tenant with issuers cannot be deleted.
	_, err = e.client.DeleteTenant(ctx, "beta")
	apiErr(t, err, 409, "conflict")

	// Delete.
	drev, err := e.client.DeleteIssuer(ctx, "acme", "corp-idp")
	if err != nil || drev <= rev {
		t.Fatalf("DeleteIssuer = %d, %v", drev, err)
	}
	_, err = e.client.GetIssuer(ctx, "acme", "corp-idp")
	apiErr(t, err, 404, "not_found")
	_, err = e.client.DeleteIssuer(ctx, "acme", "corp-idp")
	apiErr(t, err, 404, "not_found")
	for _, p := range []string{"/v1/tenants/acme/issuers/Bad_Name", "/v1/tenants/Bad_Tenant/issuers/idp"} {
		if st, _, b := e.raw("GET", p, "-default-", nil); st != 404 || errorJSON(t, b).Code != "not_found" {
			t.Errorf("GET %s: %d %s", p, st, b)
		}
	}
	st, hdr, _ = e.raw("PATCH", "/v1/tenants/acme/issuers/corp-idp", "-default-", nil)
	if st != 405 || hdr.Get("Allow") != "GET, PUT, DELETE" {
		t.Fatalf("PATCH issuer: %d Allow %q", st, hdr.Get("Allow"))
	}
}

func (e *env) mustIssuer(is credentials.Issuer) {
	e.t.Helper()
	if _, _, err := e.client.PutIssuer(e.ctx(), is); err != nil {
		e.t.Fatal(err)
	}
}

// TestIssuerInvalid: a bad issuer is 400 naming the field, and nothing
// is written.
func TestIssuerInvalid(t *testing.T) {
	e := newEnv(t, Options{})
	e.mustTenant("acme")
	before := e.status()
	ec := string(mustJSON(t, ecJWK(t, "ec-1")))
	for _, c := range []struct{ name, body, field string }{
		{"no algorithms", `{"issuer":"https://idp","jwks":{"keys":[` + ec + `]}}`, "algorithms"},
		{"empty algorithms", `{"issuer":"https://idp","algorithms":[],"jwks":{"keys":[` + ec + `]}}`, "algorithms"},
		{"unknown algorithm", `{"issuer":"https://idp","algorithms":["none"],"jwks":{"keys":[` + ec + `]}}`, "algorithms[0]"},
		{"leeway over 60s", `{"issuer":"https://idp","algorithms":["ES256"],"leeway":"61s","jwks":{"keys":[` + ec + `]}}`, "leeway"},
		{"no keys at all", `{"issuer":"https://idp","algorithms":["ES256"]}`, "jwks"},
		{"bad EC point", `{"issuer":"https://idp","algorithms":["ES256"],"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}}`, "jwks.keys[0]"},
		{"key of another family", `{"issuer":"https://idp","algorithms":["RS256"],"jwks":{"keys":[` + ec + `]}}`, "jwks.keys[0]"},
		{"jwks and jwks_uri", `{"issuer":"https://idp","algorithms":["ES256"],"jwks_uri":"https://idp/jwks","jwks":{"keys":[` + ec + `]}}`, "jwks_uri"},
		{"jwks_uri not a URL", `{"issuer":"https://idp","algorithms":["ES256"],"jwks_uri":"idp/jwks"}`, "jwks_uri"},
		{"HS256 from a URL", `{"issuer":"https://idp","algorithms":["HS256"],"jwks_uri":"https://idp/jwks"}`, "algorithms"},
		{"jwks_uri without issuer", `{"algorithms":["ES256"],"jwks_uri":"https://idp/jwks"}`, "issuer"},
		{"jwks_refresh too short", `{"issuer":"https://idp","algorithms":["ES256"],"jwks_uri":"https://idp/jwks","jwks_refresh":"10s"}`, "jwks_refresh"},
		{"required claim object", `{"issuer":"https://idp","algorithms":["ES256"],"required_claims":{"x":{"a":1}},"jwks":{"keys":[` + ec + `]}}`, "required_claims.x"},
		{"unknown field", `{"issuer":"https://idp","audience":"api","algorithms":["ES256"],"jwks":{"keys":[` + ec + `]}}`, "audience"},
		{"bad name", `{"name":"Bad Name","issuer":"https://idp","algorithms":["ES256"],"jwks":{"keys":[` + ec + `]}}`, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := "/v1/tenants/acme/issuers/idp"
			if c.name == "bad name" {
				path = "/v1/tenants/acme/issuers/Bad%20Name"
			}
			st, _, b := e.raw("PUT", path, "-default-", []byte(c.body))
			eb := errorJSON(t, b)
			if st != 400 || eb.Code != "invalid" || eb.Field != c.field {
				t.Fatalf("%d %+v, want 400 field %q", st, eb, c.field)
			}
		})
	}
	// Values that credentials' own JSON decoders refuse: 400, though the
	// decoder cannot name the field.
	for _, body := range []string{
		`{"issuer":"https://idp","algorithms":["ES256"],"leeway":"soon","jwks":{"keys":[` + ec + `]}}`,
		`{"issuer":"https://idp","algorithms":["ES256"],"jwks":{"keys":[{"kty":5}]}}`,
	} {
		st, _, b := e.raw("PUT", "/v1/tenants/acme/issuers/idp", "-default-", []byte(body))
		if st != 400 || errorJSON(t, b).Code != "invalid" {
			t.Errorf("%s: %d %s", body, st, b)
		}
	}
	// A private key member is refused, not stored.
	st, _, b := e.raw("PUT", "/v1/tenants/acme/issuers/idp", "-default-",
		[]byte(`{"issuer":"https://idp","algorithms":["ES256"],"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","d":"c2VjcmV0LXByaXZhdGUta2V5"}]}}`))
	if st != 400 || bytes.Contains(b, []byte("c2VjcmV0LXByaXZhdGUta2V5")) {
		t.Fatalf("private JWK: %d %s", st, b)
	}
	// This store has no master key: an oct (HS*) secret cannot be kept,
	// and the answer says so without echoing the secret.
	oct := octJWK("hs-1")
	_, _, err := e.client.PutIssuer(e.ctx(), credentials.Issuer{Tenant: "acme", Name: "django", Algorithms: []string{"HS256"},
		JWKS: &credentials.JWKS{Keys: []credentials.JWK{oct}}})
	if ae := apiErr(t, err, 400, "invalid"); !strings.HasSuffix(ae.Field, "jwks.keys[0].k") || !strings.Contains(ae.Message, "master key") || strings.Contains(ae.Message, oct.K) {
		t.Errorf("HS256 without a master key: %v", ae)
	}
	if after := e.status(); after.Revision != before.Revision {
		t.Fatalf("revision moved from %d to %d on refused writes", before.Revision, after.Revision)
	}
}

func TestRevocations(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)

	// One revocation, as {"jti", "expires_at"}.
	st, hdr, b := e.raw("POST", "/v1/revocations", "-default-", []byte(`{"jti":"jti-b","expires_at":"`+exp.Format(time.RFC3339)+`"}`))
	if st != 200 || hdr.Get("ETag") != `"1"` || !bytes.Contains(b, []byte(`"revision":1`)) {
		t.Fatalf("POST one: %d ETag %q %s", st, hdr.Get("ETag"), b)
	}
	// Several, as {"revocations": [...]}, through the client.
	later := exp.Add(time.Hour)
	res, err := e.client.Revoke(ctx, credentials.Revocation{JTI: "jti-a", ExpiresAt: exp}, credentials.Revocation{JTI: "jti-c", ExpiresAt: later})
	if err != nil || res.Revision != 2 || !res.Changed {
		t.Fatalf("Revoke = %+v, %v", res, err)
	}
	rs, err := e.client.ListRevocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var jtis []string
	for _, r := range rs {
		jtis = append(jtis, r.JTI)
		if r.CreatedAt.IsZero() {
			t.Errorf("%s has no created_at", r.JTI)
		}
	}
	if diff := cmp.Diff([]string{"jti-a", "jti-b", "jti-c"}, jtis); diff != "" {
		t.Fatalf("ListRevocations jtis (-want +got):\n%s", diff)
	}
	if !rs[2].ExpiresAt.Equal(later) {
		t.Fatalf("jti-c expires %v, want %v", rs[2].ExpiresAt, later)
	}
	// Revoking again with a later expiry keeps the later one.
	if _, err := e.client.Revoke(ctx, credentials.Revocation{JTI: "jti-a", ExpiresAt: later}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Revoke(ctx, credentials.Revocation{JTI: "jti-a", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	rs, _ = e.client.ListRevocations(ctx)
	if len(rs) != 3 || rs[0].JTI != "jti-a" || !rs[0].ExpiresAt.Equal(later) {
		t.Fatalf("after re-revoking: %+v", rs)
	}
	st, hdr, b = e.raw("GET", "/v1/revocations", "-default-", nil)
	if st != 200 || hdr.Get("ETag") == "" || !bytes.Contains(b, []byte(`"revocations":[{"jti":"jti-a"`)) {
		t.Fatalf("GET: %d %s", st, b)
	}

	before := e.status()
	for _, c := range []struct{ body, field string }{
		{`{"jti":"x"}`, "expires_at"},
		{`{"expires_at":"` + exp.Format(time.RFC3339) + `"}`, "jti"},
		{`{}`, "jti"},
		{`{"jti":"x","expires_at":"` + exp.Format(time.RFC3339) + `","revocations":[{"jti":"y","expires_at":"` + exp.Format(time.RFC3339) + `"}]}`, "revocations"},
		{`{"revocations":[]}`, "revocations"},
		{`{"revocations":[{"jti":"y","expires_at":"` + exp.Format(time.RFC3339) + `"},{"jti":"y","expires_at":"` + exp.Format(time.RFC3339) + `"}]}`, "revocations[1].jti"},
		{`{"revocations":[{"jti":"y"}]}`, "revocations[0].expires_at"},
		{`{"revocations":[{"jti":"bad\u0001jti","expires_at":"` + exp.Format(time.RFC3339) + `"}]}`, "revocations[0].jti"},
		{`{"jti":"x","expires_at":"` + exp.Format(time.RFC3339) + `","reason":"leak"}`, "reason"},
	} {
		st, _, b := e.raw("POST", "/v1/revocations", "-default-", []byte(c.body))
		eb := errorJSON(t, b)
		if st != 400 || eb.Code != "invalid" || !strings.HasSuffix(eb.Field, c.field) {
			t.Errorf("%s: %d %+v, want field %s", c.body, st, eb, c.field)
		}
	}
	// A time the JSON decoder refuses: 400, though it cannot name the field.
	if st, _, b := e.raw("POST", "/v1/revocations", "-default-", []byte(`{"jti":"x","expires_at":"tomorrow"}`)); st != 400 || errorJSON(t, b).Code != "invalid" {
		t.Errorf("expires_at tomorrow: %d %s", st, b)
	}
	if _, err := e.client.Revoke(ctx); err == nil {
		t.Error("Revoke of nothing succeeded")
	}
	if after := e.status(); after.Revision != before.Revision {
		t.Fatalf("revision moved from %d to %d on refused writes", before.Revision, after.Revision)
	}
}

func TestRevokeTokens(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	e.mustClient("cl_other", "acme")
	if cl, _ := e.client.GetClient(ctx, "cl_app"); cl.TokenVersion != 0 {
		t.Fatalf("new client token_version %d", cl.TokenVersion)
	}
	start := e.status().Revision
	for want := int64(1); want <= 2; want++ {
		v, rev, err := e.client.RevokeTokens(ctx, "cl_app")
		if err != nil {
			t.Fatal(err)
		}
		if v != want || rev != start+uint64(want) {
			t.Fatalf("RevokeTokens = version %d revision %d, want %d and %d", v, rev, want, start+uint64(want))
		}
		cl, err := e.client.GetClient(ctx, "cl_app")
		if err != nil || cl.TokenVersion != want {
			t.Fatalf("client after revoke = %+v, %v", cl, err)
		}
	}
	if cl, _ := e.client.GetClient(ctx, "cl_other"); cl.TokenVersion != 0 {
		t.Fatalf("another client's token_version moved to %d", cl.TokenVersion)
	}
	// The raw answer: revision, client_id, token_version, with the ETag.
	st, hdr, b := e.raw("POST", "/v1/clients/cl_app/revoke-tokens", "-default-", []byte(`{}`))
	want := fmt.Sprintf(`{"revision":%d,"client_id":"cl_app","token_version":3}`+"\n", start+3)
	if st != 200 || string(b) != want || hdr.Get("ETag") != fmt.Sprintf(`"%d"`, start+3) {
		t.Fatalf("raw revoke-tokens: %d ETag %q %s, want %s", st, hdr.Get("ETag"), b, want)
	}
	// A client update keeps the token_version (it is server-managed).
	if cl, _, err := e.client.PutClient(ctx, credentials.Client{ID: "cl_app", Tenant: "acme", Name: "renamed"}); err != nil || cl.TokenVersion != 3 {
		t.Fatalf("PutClient after revokes = %+v, %v", cl, err)
	}

	before := e.status()
	_, _, err := e.client.RevokeTokens(ctx, "cl_missing")
	apiErr(t, err, 404, "not_found")
	_, _, err = e.client.RevokeTokens(ctx, "not-a-client-id")
	apiErr(t, err, 404, "not_found")
	st, _, b = e.raw("POST", "/v1/clients/cl_app/revoke-tokens", "-default-", []byte(`{"all":true}`))
	if eb := errorJSON(t, b); st != 400 || eb.Field != "all" {
		t.Fatalf("unknown field: %d %+v", st, eb)
	}
	st, _, b = e.raw("POST", "/v1/clients/cl_app/revoke-tokens", "-default-", nil, "If-Match", fmt.Sprint(before.Revision-1))
	if st != 412 || errorJSON(t, b).Code != "precondition_failed" {
		t.Fatalf("stale If-Match: %d %s", st, b)
	}
	if after := e.status(); after.Revision != before.Revision {
		t.Fatalf("revision moved from %d to %d on refused revokes", before.Revision, after.Revision)
	}
	if cl, _ := e.client.GetClient(ctx, "cl_app"); cl.TokenVersion != 3 {
		t.Fatalf("token_version %d after refused revokes, want 3", cl.TokenVersion)
	}
	st, _, b = e.raw("POST", "/v1/clients/cl_app/revoke-tokens", "-default-", nil, "If-Match", fmt.Sprintf(`"%d"`, before.Revision))
	if st != 200 || !bytes.Contains(b, []byte(`"token_version":4`)) {
		t.Fatalf("matching If-Match: %d %s", st, b)
	}
}

func TestIssuerIfMatch(t *testing.T) {
	e := newEnv(t, Options{})
	e.mustTenant("acme")
	e.mustIssuer(testIssuer(t, "acme", "idp"))
	before := e.status()
	stale := fmt.Sprint(before.Revision - 1)
	changed := testIssuer(t, "acme", "idp")
	changed.Audiences = []string{"other"}
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		method, path string
		body         []byte
	}{
		{"PUT", "/v1/tenants/acme/issuers/idp", mustJSON(t, changed)},
		{"DELETE", "/v1/tenants/acme/issuers/idp", nil},
		{"POST", "/v1/revocations", []byte(`{"jti":"j1","expires_at":"` + exp + `"}`)},
	} {
		st, _, b := e.raw(c.method, c.path, "-default-", c.body, "If-Match", stale)
		if st != 412 || errorJSON(t, b).Code != "precondition_failed" {
			t.Errorf("%s %s with a stale If-Match: %d %s", c.method, c.path, st, b)
		}
	}
	if after := e.status(); after.Revision != before.Revision {
		t.Fatalf("revision moved from %d to %d", before.Revision, after.Revision)
	}
	st, hdr, b := e.raw("PUT", "/v1/tenants/acme/issuers/idp", "-default-", mustJSON(t, changed), "If-Match", fmt.Sprintf(`"%d"`, before.Revision))
	if st != 200 || hdr.Get("ETag") != fmt.Sprintf(`"%d"`, before.Revision+1) {
		t.Fatalf("PUT with the current If-Match: %d %s", st, b)
	}
}

// TestSnapshotIssuersAndRevocations: issuers and revocations travel
// through PUT /v1/snapshot, GET /v1/snapshot and POST /v1/changes.
func TestSnapshotIssuersAndRevocations(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	snap := testSnapshot()
	snap.Issuers = []credentials.Issuer{testIssuer(t, "acme", "corp-idp"),
		{Tenant: "beta", Name: "auth0", Issuer: "https://beta.eu.auth0.com/", Algorithms: []string{"RS256"}, JWKSURI: "https://beta.eu.auth0.com/.well-known/jwks.json"}}
	snap.Revocations = []credentials.Revocation{{JTI: "3f2c0a9e", ExpiresAt: exp}}
	res, err := e.client.PutSnapshot(ctx, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GetSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Issuers) != 2 || got.Issuers[0].ID() != "acme/corp-idp" || got.Issuers[1].ID() != "beta/auth0" {
		t.Fatalf("snapshot issuers = %+v", got.Issuers)
	}
	if diff := cmp.Diff(snap.Issuers[0], got.Issuers[0], ignoreTimes); diff != "" {
		t.Errorf("snapshot issuer (-put +got):\n%s", diff)
	}
	if len(got.Revocations) != 1 || got.Revocations[0].JTI != "3f2c0a9e" || !got.Revocations[0].ExpiresAt.Equal(exp) {
		t.Fatalf("snapshot revocations = %+v", got.Revocations)
	}
	// The export applies as is and changes nothing.
	res2, err := e.client.PutSnapshot(ctx, got, u64(res.Revision))
	if err != nil || res2.Changed || res2.Revision != res.Revision {
		t.Fatalf("PUT of the export = %+v, %v", res2, err)
	}
	// A snapshot without the issuer deletes it; revocations stay (they are
	// additive and leave when they expire).
	snap.Issuers = snap.Issuers[1:]
	snap.Revocations = nil
	if _, err := e.client.PutSnapshot(ctx, snap, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetIssuer(ctx, "acme", "corp-idp"); err == nil {
		t.Fatal("an issuer missing from the snapshot survived")
	}
	if rs, _ := e.client.ListRevocations(ctx); len(rs) != 1 {
		t.Fatalf("revocations after a snapshot without them: %+v", rs)
	}
	// A change batch upserts and deletes issuers and adds revocations.
	batch := &credentials.ChangeBatch{
		Upsert: credentials.Snapshot{
			Issuers:     []credentials.Issuer{testIssuer(t, "acme", "second")},
			Revocations: []credentials.Revocation{{JTI: "4a5b", ExpiresAt: exp}},
		},
		Delete: credentials.Deletes{Issuers: []string{"beta/auth0"}},
	}
	if _, err := e.client.Changes(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
	all, err := e.client.ListIssuers(ctx, "")
	if err != nil || len(all) != 1 || all[0].ID() != "acme/second" {
		t.Fatalf("issuers after the batch = %+v, %v", all, err)
	}
	if rs, _ := e.client.ListRevocations(ctx); len(rs) != 2 {
		t.Fatalf("revocations after the batch: %+v", rs)
	}
	// Field names follow the document.
	_, err = e.client.Changes(ctx, &credentials.ChangeBatch{Delete: credentials.Deletes{Issuers: []string{"no-slash"}}}, nil)
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "delete.issuers[0]" {
		t.Errorf("field = %q", ae.Field)
	}
	bad := testIssuer(t, "acme", "third")
	bad.Leeway = credentials.Duration(2 * time.Minute)
	_, err = e.client.PutSnapshot(ctx, &credentials.Snapshot{Tenants: snap.Tenants, Issuers: []credentials.Issuer{bad}}, nil)
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "issuers[0].leeway" {
		t.Errorf("field = %q", ae.Field)
	}
	st, _, b := e.raw("POST", "/v1/changes", "-default-", []byte(`{"upsert":{"revocations":[{"jti":"x"}]}}`))
	if eb := errorJSON(t, b); st != 400 || eb.Field != "upsert.revocations[0].expires_at" {
		t.Errorf("revocation without expiry: %d %+v", st, eb)
	}
}

// TestOctSecretsNeverLeave puts HS256 issuers (oct keys: secrets) through
// every route that answers issuers and greps the answers and the log for
// the secrets.
//
// The store encrypts oct secrets with the master key, so this test opens
// bolt with one (see newEnvMasterKey).
func TestOctSecretsNeverLeave(t *testing.T) {
	e := newEnvMasterKey(t)
	ctx := e.ctx()
	e.mustTenant("acme")
	k1, k2 := octJWK("hs-1"), octJWK("hs-2")
	secrets := []string{k1.K, k2.K}
	is := credentials.Issuer{Tenant: "acme", Name: "django", Algorithms: []string{"HS256"},
		JWKS: &credentials.JWKS{Keys: []credentials.JWK{k1, k2}}, RequiredClaims: map[string]any{"token_type": "access"}}

	st, _, b := e.raw("PUT", "/v1/tenants/acme/issuers/django", "-default-", mustJSON(t, is))
	if st != 200 {
		t.Fatalf("PUT: %d %s", st, b)
	}
	answers := map[string][]byte{"PUT": b}
	put, rev, err := e.client.PutIssuer(ctx, is) // identical: no change
	if err != nil || put.JWKS == nil || len(put.JWKS.Keys) != 2 || put.JWKS.Keys[0].K != "" || put.JWKS.Keys[0].Kid != "hs-1" {
		t.Fatalf("PutIssuer = %+v, %v", put, err)
	}
	// A read-modify-write has no k: the kid keeps the stored secret.
	got, err := e.client.GetIssuer(ctx, "acme", "django")
	if err != nil {
		t.Fatal(err)
	}
	got.Audiences = []string{"api"}
	if _, rev2, err := e.client.PutIssuer(ctx, *got); err != nil || rev2 != rev+1 {
		t.Fatalf("PUT without k: rev %d → %d, %v", rev, rev2, err)
	}
	if !e.octSecretServed("acme", "django", "", k1) {
		t.Fatal("the stored secret was not kept by a PUT without k")
	}
	// Without k an unknown kid cannot be resolved; without k and kid
	// nothing names a stored key.
	for _, kid := range []string{"hs-unknown", ""} {
		bad := *got
		bad.JWKS = &credentials.JWKS{Keys: []credentials.JWK{{Kty: "oct", Kid: kid}}}
		_, _, err := e.client.PutIssuer(ctx, bad)
		apiErr(t, err, 400, "invalid")
	}
	// A short secret is refused without echoing it.
	short := credentials.JWK{Kty: "oct", Kid: "short", K: b64.EncodeToString([]byte("too-short-secret-1234"))}
	secrets = append(secrets, short.K)
	bad := is
	bad.JWKS = &credentials.JWKS{Keys: []credentials.JWK{short}}
	st, _, b = e.raw("PUT", "/v1/tenants/acme/issuers/django", "-default-", mustJSON(t, bad))
	if eb := errorJSON(t, b); st != 400 || eb.Field != "jwks.keys[0]" {
		t.Fatalf("short secret: %d %+v", st, eb)
	}
	answers["PUT short"] = b
	// Snapshot and change batch carry secrets in too.
	k3 := octJWK("hs-3")
	secrets = append(secrets, k3.K)
	snapIs := credentials.Issuer{Tenant: "acme", Name: "snap", Issuer: "https://snap.example", Algorithms: []string{"HS256"}, JWKS: &credentials.JWKS{Keys: []credentials.JWK{k3}}}
	if _, err := e.client.Changes(ctx, &credentials.ChangeBatch{Upsert: credentials.Snapshot{Issuers: []credentials.Issuer{snapIs}}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/tenants/acme/issuers/django", "/v1/tenants/acme/issuers", "/v1/issuers", "/v1/snapshot"} {
		st, _, b := e.raw("GET", p, "-default-", nil)
		if st != 200 || !bytes.Contains(b, []byte(`"kty":"oct"`)) {
			t.Fatalf("GET %s: %d %s", p, st, b)
		}
		answers["GET "+p] = b
	}
	// The exported snapshot (oct keys without k) applies and keeps the secrets.
	snap, err := e.client.GetSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.client.PutSnapshot(ctx, snap, nil); err != nil || res.Changed {
		t.Fatalf("PUT of the export = %+v, %v", res, err)
	}
	if !e.octSecretServed("acme", "snap", "https://snap.example", k3) {
		t.Fatal("a snapshot without k lost the stored secret")
	}
	for what, b := range answers {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s answers an oct secret: %s", what, b)
			}
		}
		if bytes.Contains(b, []byte(`"k":`)) {
			t.Errorf("%s answers a k member: %s", what, b)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"admin change"`) {
		t.Fatal("issuer changes are not logged")
	}
	for _, s := range append(secrets, testToken) {
		if strings.Contains(logs, s) {
			t.Errorf("log contains secret %q", s)
		}
	}
}

// TestIssuerOpsNoSecretsInLogs: the audit lines of issuer, revocation
// and revoke-tokens writes name what changed and never a key.
func TestIssuerOpsNoSecretsInLogs(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	is := testIssuer(t, "acme", "idp")
	e.mustIssuer(is)
	if _, err := e.client.Revoke(ctx, credentials.Revocation{JTI: "jti-logged", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.client.RevokeTokens(ctx, "cl_app"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.DeleteIssuer(ctx, "acme", "idp"); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	for _, route := range []string{"PUT /v1/tenants/{slug}/issuers/{name}", "POST /v1/revocations", "POST /v1/clients/{id}/revoke-tokens", "DELETE /v1/tenants/{slug}/issuers/{name}"} {
		if !strings.Contains(logs, `"route":"`+route+`"`) {
			t.Errorf("no audit line for %s", route)
		}
	}
	for _, path := range []string{"/v1/tenants/acme/issuers/idp", "/v1/clients/cl_app/revoke-tokens"} {
		if !strings.Contains(logs, `"path":"`+path+`"`) {
			t.Errorf("the audit lines do not name %s", path)
		}
	}
	for _, k := range is.JWKS.Keys {
		for _, v := range []string{k.N, k.X, k.Y} {
			if v != "" && strings.Contains(logs, v) {
				t.Errorf("log contains key material %q…", v[:8])
			}
		}
	}
	if strings.Contains(logs, testToken) {
		t.Error("log contains the admin token")
	}
}

// newEnvMasterKey is newEnv over a store that can keep oct (HS*) secrets:
// bolt encrypts them with the master key.
func newEnvMasterKey(t *testing.T) *env {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return newEnvWith(t, Options{}, bolt.Options{MasterKey: key})
}

// octSecretServed reports whether the store's index accepts an HS256
// token of issuer tenant/name (iss claim iss) signed with oct key k.
func (e *env) octSecretServed(tenant, name, iss string, k credentials.JWK) bool {
	e.t.Helper()
	secret, err := b64.DecodeString(k.K)
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": "user-1", "aud": "api", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "token_type": "access"}
	if iss != "" {
		claims["iss"] = iss
	}
	jt := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	jt.Header["kid"] = k.Kid
	tok, err := jt.SignedString(secret)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &credentials.Checker{Source: e.store, JWTCacheSize: -1}
	d, err := c.Check(e.ctx(), &credentials.Request{Policy: credentials.DefaultPolicy, Authorization: "Bearer " + tok, HasAuthorization: true})
	if err != nil {
		e.t.Fatal(err)
	}
	if !d.Allowed() || d.Issuer != tenant+"/"+name {
		e.t.Logf("HS256 token of %s/%s (kid %s): %s %s, issuer %q", tenant, name, k.Kid, d.Code, d.Reason, d.Issuer)
		return false
	}
	return true
}
