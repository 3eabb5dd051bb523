package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

var rawURL = base64.RawURLEncoding

// writeTemp writes data to a new file name in the test's temp dir.
func writeTemp(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// signJWT signs claims with key (ES256, RS256 or HS256 by key type) and kid.
func signJWT(t *testing.T, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	var m jwt.SigningMethod
	switch key.(type) {
	case *ecdsa.PrivateKey:
		m = jwt.SigningMethodES256
	case *rsa.PrivateKey:
		m = jwt.SigningMethodRS256
	case []byte:
		m = jwt.SigningMethodHS256
	default:
		t.Fatalf("no signing method for %T", key)
	}
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bearerCheck sends an Envoy-shaped Check with Authorization: Bearer tok
// and returns the deny code, or "" for an allow, with the allow headers.
func bearerCheck(t *testing.T, az authv3.AuthorizationClient, tok string) (string, map[string]string) {
	t.Helper()
	resp, err := az.Check(ctxT(t), envoyCheck("GET", "/v1/projects", map[string]string{"authorization": "Bearer " + tok}, nil))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus().GetCode() == 0 {
		return "", okHeaders(resp)
	}
	var body struct{ Code string }
	json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
	if body.Code == "" {
		t.Fatalf("deny without a code: %v", resp)
	}
	return body.Code, nil
}

// cliFails runs a command that must fail with exit code and print want
// (every string) to stderr.
func (in *instance) cliFails(t *testing.T, stdin string, code int, want []string, args ...string) {
	t.Helper()
	out, errOut, got := in.cli(t, stdin, args...)
	if got != code {
		t.Fatalf("keygate %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("keygate %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, errOut)
		}
	}
}

// TestIssuerAndRevokeCLI drives `keygate issuer` and `keygate revoke`
// against the real binary and checks each step with an Envoy-shaped
// Check of a JWT signed in the test.
func TestIssuerAndRevokeCLI(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	kg := startKeygate(t, dataDir)
	az := kg.authz(t)
	kg.mustCLI(t, "tenant", "create", "acme-corp", "--name", "Acme Corp")
	kg.mustCLI(t, "client", "create", "--tenant", "acme-corp", "--id", "cl_svc", "--scopes", "read:*")

	// An ES256 issuer from flags, its key from a JWKS file.
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := writeTemp(t, "jwks.json", fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","use":"sig","x":%q,"y":%q}]}`,
		rawURL.EncodeToString(ec.X.FillBytes(make([]byte, 32))), rawURL.EncodeToString(ec.Y.FillBytes(make([]byte, 32)))))
	out := kg.mustCLI(t, "issuer", "put", "acme-corp/corp-idp", "--issuer", "https://idp.acme.example", "--audience", "api",
		"--audience", "https://api.acme.example", "--algorithms", "ES256,RS256", "--jwks-file", jwksFile, "--leeway", "30s",
		"--required-claim", "token_type=access", "--required-claim", "level=2", "--required-claim", "mfa=true",
		"--required-claim", `code="007"`, "--roles-claim", "realm_access.roles", "-o", "json")
	var put map[string]any
	if err := json.Unmarshal([]byte(out), &put); err != nil {
		t.Fatalf("issuer put -o json: %v: %s", err, out)
	}
	want := map[string]any{"token_type": "access", "level": float64(2), "mfa": true, "code": "007"}
	if diff := cmp.Diff(want, put["required_claims"]); diff != "" {
		t.Errorf("required_claims (-want +got):\n%s", diff)
	}
	if put["leeway"] != "30s" || put["tenant"] != "acme-corp" || put["name"] != "corp-idp" {
		t.Errorf("issuer put -o json = %s", out)
	}

	now := time.Now()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "https://idp.acme.example", "aud": "api", "sub": "user-7", "exp": now.Add(10 * time.Minute).Unix(),
			"iat": now.Unix(), "token_type": "access", "level": 2, "mfa": true, "code": "007"}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	tok := signJWT(t, ec, "ec-1", claims(jwt.MapClaims{"jti": "jti-one"}))
	code, hdr := bearerCheck(t, az, tok)
	if code != "" || hdr["x-tenant-id"] != "acme-corp" || hdr["x-auth-subject"] != "user-7" || hdr["x-auth-method"] != "jwt" {
		t.Fatalf("ES256 token of the new issuer: deny %q, headers %v", code, hdr)
	}
	if code, _ := bearerCheck(t, az, signJWT(t, ec, "ec-1", claims(jwt.MapClaims{"level": 3}))); code != "token_not_valid" {
		t.Fatalf("token with the wrong required claim: %q", code)
	}

	// A jwks_uri issuer; list and get, table and JSON.
	kg.mustCLI(t, "issuer", "put", "acme-corp/auth0", "--issuer", "https://acme.eu.auth0.com/", "--algorithms", "RS256",
		"--jwks-uri", "https://acme.eu.auth0.com/.well-known/jwks.json", "--jwks-refresh", "1h")
	list := kg.mustCLI(t, "issuer", "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "TENANT NAME ISSUER ALGORITHMS KEYS AUDIENCES DISABLED" {
		t.Fatalf("issuer list:\n%s", list)
	}
	if f := strings.Fields(lines[1]); f[1] != "auth0" || f[4] != "https://acme.eu.auth0.com/.well-known/jwks.json" {
		t.Errorf("jwks_uri issuer row: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[1] != "corp-idp" || f[3] != "ES256,RS256" || f[4] != "inline" || f[5] != "1" || f[6] != "api" {
		t.Errorf("inline issuer row: %q", lines[2])
	}
	var listed []struct{ Tenant, Name string }
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "issuer", "list", "--tenant", "acme-corp", "-o", "json")), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("issuer list --tenant -o json: %v %+v", err, listed)
	}
	var got struct {
		JWKSRefresh string `json:"jwks_refresh"`
		JWKSURI     string `json:"jwks_uri"`
	}
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "issuer", "get", "acme-corp/auth0", "-o", "json")), &got); err != nil || got.JWKSRefresh != "1h0m0s" {
		t.Fatalf("issuer get -o json: %v %+v", err, got)
	}

	// A YAML document (-f) with an RSA key written as YAML: its n must not
	// turn into a boolean.
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	yamlDoc := fmt.Sprintf(`# the partner IdP
issuer: https://partner.example
audiences: [api]
algorithms: [RS256]
leeway: 10s
jwks:
  keys:
    - kty: RSA
      kid: rsa-1
      n: %s
      e: %s
`, rawURL.EncodeToString(rk.N.Bytes()), rawURL.EncodeToString(big.NewInt(int64(rk.E)).Bytes()))
	kg.mustCLI(t, "issuer", "put", "acme-corp/partner", "-f", writeTemp(t, "partner.yaml", yamlDoc))
	rtok := signJWT(t, rk, "rsa-1", jwt.MapClaims{"iss": "https://partner.example", "aud": "api", "sub": "p-1", "exp": now.Add(time.Minute).Unix()})
	if code, hdr := bearerCheck(t, az, rtok); code != "" || hdr["x-auth-subject"] != "p-1" {
		t.Fatalf("RS256 token of the YAML issuer: deny %q", code)
	}
	// The same from stdin, naming the issuer in the document.
	if o, e, c := kg.cli(t, "tenant: acme-corp\nname: partner2\n"+strings.Replace(yamlDoc, "https://partner.example", "https://partner2.example", 1), "issuer", "put", "-f", "-"); c != 0 {
		t.Fatalf("issuer put -f - : %d %s %s", c, o, e)
	}

	// Revoke a jti: the token is refused from the next Check on.
	out = kg.mustCLI(t, "revoke", "jti", "jti-one", "--expires-in", "1h")
	if !strings.Contains(out, "jti-one") {
		t.Errorf("revoke jti printed %q", out)
	}
	if code, _ := bearerCheck(t, az, tok); code != "token_not_valid" {
		t.Fatalf("revoked jti: %q", code)
	}
	exp := now.Add(48 * time.Hour).UTC().Truncate(time.Second)
	var rj struct {
		Revision    uint64
		Revocations []struct{ JTI string }
	}
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "revoke", "jti", "jti-two", "jti-three", "--expires-at", exp.Format(time.RFC3339), "-o", "json")), &rj); err != nil || rj.Revision == 0 || len(rj.Revocations) != 2 {
		t.Fatalf("revoke jti -o json: %v %+v", err, rj)
	}
	var revs []struct {
		JTI       string    `json:"jti"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "revoke", "list", "-o", "json")), &revs); err != nil || len(revs) != 3 || revs[0].JTI != "jti-one" || !revs[2].ExpiresAt.Equal(exp) {
		t.Fatalf("revoke list -o json: %v %+v", err, revs)
	}
	if l := kg.mustCLI(t, "revoke", "list"); !strings.HasPrefix(l, "JTI") || !strings.Contains(l, "REVOKED") || !strings.Contains(l, "jti-three") {
		t.Errorf("revoke list:\n%s", l)
	}

	// Revoke a client's tokens: token_version 0 → 1 → 2; a token's ver
	// below it is refused.
	ctok := func(ver int) string {
		return signJWT(t, ec, "ec-1", claims(jwt.MapClaims{"sub": "cl_svc", "ver": ver}))
	}
	if code, hdr := bearerCheck(t, az, ctok(0)); code != "" || hdr["x-auth-client-id"] != "cl_svc" {
		t.Fatalf("client token before revoking: %q %v", code, hdr)
	}
	out = kg.mustCLI(t, "revoke", "client", "cl_svc")
	if f := strings.Fields(out); len(f) != 5 || f[3] != "cl_svc" || f[4] != "1" {
		t.Errorf("revoke client printed %q", out)
	}
	var rc struct {
		ClientID     string `json:"client_id"`
		TokenVersion int64  `json:"token_version"`
		Revision     uint64 `json:"revision"`
	}
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "revoke", "client", "cl_svc", "-o", "json")), &rc); err != nil || rc.TokenVersion != 2 || rc.ClientID != "cl_svc" || rc.Revision == 0 {
		t.Fatalf("revoke client -o json: %v %+v", err, rc)
	}
	if code, _ := bearerCheck(t, az, ctok(1)); code != "token_not_valid" {
		t.Fatalf("token of ver 1 after two revokes: %q", code)
	}
	if code, _ := bearerCheck(t, az, ctok(2)); code != "" {
		t.Fatalf("token of ver 2: %q", code)
	}

	// Errors: usage (exit 2) and API errors naming the field and its flag (exit 1).
	kg.cliFails(t, "", 1, []string{"400 invalid", "leeway", "--leeway"},
		"issuer", "put", "acme-corp/bad", "--algorithms", "ES256", "--jwks-file", jwksFile, "--leeway", "61s")
	kg.cliFails(t, "", 1, []string{"400 invalid", "algorithms", "--algorithms"}, "issuer", "put", "acme-corp/bad", "--jwks-file", jwksFile)
	kg.cliFails(t, "", 1, []string{"jwks.keys[0]", "EC key", "--jwks-file"}, "issuer", "put", "acme-corp/bad", "--algorithms", "ES256",
		"--jwks-file", writeTemp(t, "jwks.json", `{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	kg.cliFails(t, "", 2, []string{`"corp-idp" is not TENANT/NAME`}, "issuer", "get", "corp-idp")
	kg.cliFails(t, "", 2, []string{"not both"}, "issuer", "put", "acme-corp/x", "-f", jwksFile, "--issuer", "https://x")
	kg.cliFails(t, "", 2, []string{"-f FILE"}, "issuer", "put", "acme-corp/x")
	kg.cliFails(t, "", 2, []string{"--leeway"}, "issuer", "put", "acme-corp/x", "--algorithms", "ES256", "--leeway", "soon")
	kg.cliFails(t, "", 2, []string{"name=value"}, "issuer", "put", "acme-corp/x", "--required-claim", "novalue")
	kg.cliFails(t, "", 1, []string{"unknown field", "audience"}, "issuer", "put", "acme-corp/x", "-f", writeTemp(t, "bad.yaml", "audience: api\nalgorithms: [ES256]\n"))
	kg.cliFails(t, "", 2, []string{"names issuer acme-corp/partner"}, "issuer", "put", "acme-corp/other", "-f", writeTemp(t, "named.yaml", "tenant: acme-corp\nname: partner\n"))
	kg.cliFails(t, "", 1, []string{"404 not_found"}, "issuer", "get", "acme-corp/missing")
	kg.cliFails(t, "", 2, []string{"exactly one of --expires-at or --expires-in"}, "revoke", "jti", "jti-x")
	kg.cliFails(t, "", 2, []string{"RFC 3339"}, "revoke", "jti", "jti-x", "--expires-at", "tomorrow")
	kg.cliFails(t, "", 2, []string{"at least one JTI"}, "revoke", "jti", "--expires-in", "1h")
	kg.cliFails(t, "", 1, []string{"404 not_found"}, "revoke", "client", "cl_missing")

	// Delete: the issuer's tokens are refused from the next Check on.
	out = kg.mustCLI(t, "issuer", "delete", "acme-corp/corp-idp")
	if !strings.HasPrefix(out, "deleted issuer acme-corp/corp-idp (revision ") {
		t.Errorf("issuer delete printed %q", out)
	}
	if code, _ := bearerCheck(t, az, ctok(2)); code != "token_not_valid" {
		t.Fatalf("token of a deleted issuer: %q", code)
	}
	kg.cliFails(t, "", 1, []string{"404 not_found"}, "issuer", "delete", "acme-corp/corp-idp")

	if err := kg.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if l := kg.log.String(); strings.Contains(l, tok) || strings.Contains(l, readFile(t, filepath.Join(dataDir, "admin.token"))) {
		t.Error("the log holds a token")
	}
}

// TestIssuerCLIHS256 puts an HS256 issuer (a Django SECRET_KEY as an oct
// JWK) through the CLI. Its secret must be accepted, kept when the issuer
// is re-put without it, and never printed or logged.
//
// It depends on `keygate serve` opening the store with the master key
// (--master-key-file, dev default <data-dir>/master.key): without it the
// store refuses oct keys.
func TestIssuerCLIHS256(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	kg := startKeygate(t, dataDir)
	az := kg.authz(t)
	kg.mustCLI(t, "tenant", "create", "acme-corp")

	secretKey := "django-insecure-" + rawURL.EncodeToString([]byte(fmt.Sprint(time.Now().UnixNano()))) + "-0123456789abcdef"
	k := rawURL.EncodeToString([]byte(secretKey))
	doc := fmt.Sprintf(`algorithms: [HS256]
required_claims: {token_type: access}
subject_claim: user_id
jwks:
  keys:
    - {kty: oct, kid: django-1, k: %s}
`, k)
	out := kg.mustCLI(t, "issuer", "put", "acme-corp/django", "-f", writeTemp(t, "django.yaml", doc))
	tok := signJWT(t, []byte(secretKey), "django-1", jwt.MapClaims{"user_id": 42, "token_type": "access", "exp": time.Now().Add(time.Minute).Unix()})
	code, hdr := bearerCheck(t, az, tok)
	if code != "" || hdr["x-auth-subject"] != "42" {
		t.Fatalf("HS256 token: deny %q, headers %v", code, hdr)
	}
	// get -o json has no k; put of that document keeps the stored secret.
	js := kg.mustCLI(t, "issuer", "get", "acme-corp/django", "-o", "json")
	if strings.Contains(js, `"k"`) {
		t.Fatalf("issuer get shows k: %s", js)
	}
	edited := strings.Replace(js, `"subject_claim": "user_id"`, `"subject_claim": "user_id", "audiences": []`, 1)
	if o, e, c := kg.cli(t, edited, "issuer", "put", "acme-corp/django", "-f", "-"); c != 0 {
		t.Fatalf("re-put without k: %d %s %s", c, o, e)
	}
	if code, _ := bearerCheck(t, az, tok); code != "" {
		t.Fatalf("HS256 token after a re-put without k: %q", code)
	}
	all := out + js + kg.mustCLI(t, "issuer", "list", "-o", "json") + kg.mustCLI(t, "issuer", "get", "acme-corp/django")
	if err := kg.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	for _, s := range []string{k, secretKey} {
		if strings.Contains(all, s) {
			t.Error("the CLI printed the secret")
		}
		if strings.Contains(kg.log.String(), s) {
			t.Error("the log holds the secret")
		}
	}
}

// TestAdminHelpListsIssuerAndRevoke: `keygate --help` and the command
// help name the new commands.
func TestAdminHelpListsIssuerAndRevoke(t *testing.T) {
	var stdout, stderr strings.Builder
	env := func(string) string { return "" }
	if code := Main(t.Context(), []string{"--help"}, env, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, w := range []string{"keygate issuer  put|list|get|delete", "keygate revoke  jti|client|list"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("keygate --help lacks %q:\n%s", w, stdout.String())
		}
	}
	for cmd, subs := range map[string][]string{"issuer": {"put", "get", "list", "delete", "required-claim"}, "revoke": {"jti", "client", "list"}} {
		stdout.Reset()
		if code := Main(t.Context(), []string{cmd, "--help"}, env, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		help := stdout.String()
		stdout.Reset()
		Main(t.Context(), []string{cmd, subs[0], "--help"}, env, strings.NewReader(""), &stdout, &stderr)
		help += stdout.String()
		for _, s := range subs {
			if !strings.Contains(help, s) {
				t.Errorf("keygate %s help lacks %q:\n%s", cmd, s, help)
			}
		}
	}
}

func TestClaimValue(t *testing.T) {
	for in, want := range map[string]any{
		"true": true, "false": false, "2": float64(2), "-1.5": -1.5, "1e3": float64(1000),
		"access": "access", `"007"`: "007", `"true"`: "true", "007": "007", "Inf": "Inf", "NaN": "NaN",
		"": "", "1.2.3": "1.2.3", `"unterminated`: `"unterminated`,
	} {
		if got := claimValue(in); got != want {
			t.Errorf("claimValue(%q) = %#v, want %#v", in, got, want)
		}
	}
}

// TestYAMLToJSONKeepsJWKMembers: YAML 1.1 reads the unquoted keys n and y
// as booleans; inside a JWK they are renamed back, elsewhere left alone.
func TestYAMLToJSONKeepsJWKMembers(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"jwks:\n  keys:\n    - {kty: RSA, n: abc, e: AQAB}\n    - {kty: EC, crv: P-256, x: xx, y: yy}\n",
			`{"jwks":{"keys":[{"e":"AQAB","kty":"RSA","n":"abc"},{"crv":"P-256","kty":"EC","x":"xx","y":"yy"}]}}`},
		{"required_claims: {y: 1}\nkty: none\n", `{"kty":"none","required_claims":{"true":1}}`},
		{`{"keys":[{"kty":"RSA","n":"abc","e":"AQAB"}]}`, `{"keys":[{"e":"AQAB","kty":"RSA","n":"abc"}]}`},
		{"big: 12345678901234567890\nkty: RSA\nn: x\n", `{"big":12345678901234567890,"kty":"RSA","n":"x"}`},
	} {
		got, err := yamlToJSON([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("yamlToJSON(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}
