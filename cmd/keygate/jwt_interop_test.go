package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// debianPython is the interpreter Debian's python3-jwt and
// python3-djangorestframework-simplejwt are installed for (by
// scripts/install-debian-packages.sh, which `make test` runs).
const debianPython = "/usr/bin/python3"

// python runs one of the testdata scripts with Debian's python3 and
// returns its stdout. A missing package fails the test: it is never
// skipped.
func python(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(debianPython, append([]string{filepath.Join("testdata", script)}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\n(run scripts/install-debian-packages.sh, which `make test` does)", debianPython, script, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// applyState writes a snapshot document and applies it with the CLI.
func (in *instance) applyState(t *testing.T, doc string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "state.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	in.mustCLI(t, "apply", "-f", p)
}

// checkJWT sends an Envoy-shaped Check with Authorization: Bearer tok.
func checkJWT(t *testing.T, az authv3.AuthorizationClient, tok string, ext map[string]string) *authv3.CheckResponse {
	t.Helper()
	resp, err := az.Check(ctxT(t), envoyCheck("GET", "/v1/projects", map[string]string{
		"authorization": "Bearer " + tok, "x-tenant-id": "victim"}, ext))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func denyCode(resp *authv3.CheckResponse) string {
	var body struct{ Code string }
	json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
	return body.Code
}

// TestJWTInteropSimpleJWT verifies tokens made by
// djangorestframework-simplejwt with its defaults (HS256 under the Django
// SECRET_KEY, no iss): the access token is allowed with the user's ID as
// subject, the refresh token is refused, a revoked jti is refused, and
// the HS256 secret (encrypted at rest) survives a restart.
func TestJWTInteropSimpleJWT(t *testing.T) {
	const secretKey = "django-insecure-7r$w^0b!f3kq@x6+u1v9zj2#d8c5m4n0p&s(e)y_a-l*hg"
	dataDir := filepath.Join(t.TempDir(), "data")
	kg := startKeygate(t, dataDir)
	kg.applyState(t, fmt.Sprintf(`
tenants:
  - slug: acme-corp
issuers:
  - tenant: acme-corp
    name: django
    algorithms: [HS256]
    subject_claim: user_id
    required_claims: {token_type: access}
    jwks:
      keys:
        - {kty: oct, k: %q}
`, base64.RawURLEncoding.EncodeToString([]byte(secretKey))))
	if strings.Contains(readFile(t, filepath.Join(dataDir, "keygate.db")), base64.RawURLEncoding.EncodeToString([]byte(secretKey))) {
		t.Error("the HS256 secret is in the store file in the clear")
	}

	var toks struct {
		Access, Refresh string
		AccessJTI       string `json:"access_jti"`
	}
	if err := json.Unmarshal([]byte(python(t, "simplejwt_tokens.py", secretKey, "42")), &toks); err != nil {
		t.Fatal(err)
	}
	az := kg.authz(t)
	resp := checkJWT(t, az, toks.Access, nil)
	if resp.GetStatus().GetCode() != 0 {
		t.Fatalf("simplejwt access token denied: %s; log:\n%s", resp.GetDeniedResponse().GetBody(), kg.log.String())
	}
	h := okHeaders(resp)
	for k, want := range map[string]string{"x-tenant-id": "acme-corp", "x-auth-subject": "42", "x-auth-method": "jwt"} {
		if h[k] != want {
			t.Errorf("%s = %q, want %q", k, h[k], want)
		}
	}
	if !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
		t.Errorf("the JWT is not removed upstream: %v", resp.GetOkResponse().GetHeadersToRemove())
	}
	// keygate.keep_jwt keeps it for an upstream that reads it.
	resp = checkJWT(t, az, toks.Access, map[string]string{"keygate.keep_jwt": "true"})
	if slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
		t.Error("keygate.keep_jwt: the JWT was removed")
	}

	if resp := checkJWT(t, az, toks.Refresh, nil); denyCode(resp) != "token_not_valid" {
		t.Errorf("simplejwt refresh token: got %v %s, want token_not_valid", resp.GetStatus(), resp.GetDeniedResponse().GetBody())
	}

	// Revoking the access token's jti denies it at once (the cache of
	// verified tokens is dropped with the revision).
	kg.applyChanges(t, fmt.Sprintf(`{"upsert": {"revocations": [{"jti": %q, "expires_at": %q}]}}`,
		toks.AccessJTI, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
	if resp := checkJWT(t, az, toks.Access, nil); denyCode(resp) != "token_not_valid" {
		t.Errorf("revoked access token: got %s, want token_not_valid", resp.GetDeniedResponse().GetBody())
	}

	// The encrypted secret is read back after a restart.
	if err := kg.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	kg = startKeygate(t, dataDir)
	if err := json.Unmarshal([]byte(python(t, "simplejwt_tokens.py", secretKey, "7")), &toks); err != nil {
		t.Fatal(err)
	}
	resp = checkJWT(t, kg.authz(t), toks.Access, nil)
	if resp.GetStatus().GetCode() != 0 || okHeaders(resp)["x-auth-subject"] != "7" {
		t.Errorf("after restart: %v %s", resp.GetStatus(), resp.GetDeniedResponse().GetBody())
	}
	if l := kg.log.String(); strings.Contains(l, secretKey) || strings.Contains(l, toks.Access) {
		t.Error("the log holds the secret or a token")
	}
}

// applyChanges posts a change batch with the admin token of the instance.
func (in *instance) applyChanges(t *testing.T, body string) {
	t.Helper()
	tok := strings.TrimSpace(readFile(t, filepath.Join(in.dataDir, "admin.token")))
	req, _ := http.NewRequest("POST", "http://"+in.addr("admin")+"/v1/changes", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /v1/changes: %s: %s", resp.Status, b)
	}
}

// idp is an OIDC provider's JWKS endpoint whose key set the test changes.
type idp struct {
	srv     *httptest.Server
	jwks    atomic.Pointer[[]byte]
	fetches atomic.Int64
}

func newIDP(t *testing.T) *idp {
	p := &idp{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(*p.jwks.Load())
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) publish(t *testing.T, keys ...map[string]string) {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	p.jwks.Store(&b)
}

// signingKey is a private key written as PKCS#8 PEM for PyJWT, and its
// public JWK as an IdP publishes it (with the x5t-style extras dropped).
type signingKey struct {
	alg, kid, pemFile string
	jwk               map[string]string
}

func newSigningKey(t *testing.T, dir, alg, kid string) signingKey {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var priv any
	jwk := map[string]string{"kid": kid, "use": "sig", "alg": alg}
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
		jwk["kty"], jwk["n"], jwk["e"] = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
		pub, _ := k.PublicKey.Bytes()
		jwk["kty"], jwk["crv"], jwk["x"], jwk["y"] = "EC", "P-256", b64(pub[1:33]), b64(pub[33:])
	case "EdDSA":
		pub, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
		jwk["kty"], jwk["crv"], jwk["x"] = "OKP", "Ed25519", b64(pub)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, kid+".pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return signingKey{alg: alg, kid: kid, pemFile: p, jwk: jwk}
}

// sign mints a token with PyJWT, as the IdP does.
func (k signingKey) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(claims)
	return python(t, "pyjwt_sign.py", k.alg, k.pemFile, k.kid, string(b))
}

// TestJWTInteropOIDC verifies RS256, ES256 and EdDSA tokens minted by
// PyJWT against a JWKS fetched from the IdP's jwks_uri (several keys,
// chosen by kid), Keycloak-style claims (typ, realm_access.roles), and a
// key rotation during which no request fails.
func TestJWTInteropOIDC(t *testing.T) {
	dir := t.TempDir()
	p := newIDP(t)
	rs1 := newSigningKey(t, dir, "RS256", "rsa-1")
	es := newSigningKey(t, dir, "ES256", "ec-1")
	ed := newSigningKey(t, dir, "EdDSA", "ed-1")
	p.publish(t, rs1.jwk, es.jwk, ed.jwk)

	kg := startKeygate(t, filepath.Join(dir, "data"), "--jwks-min-refresh", "1m")
	kg.applyState(t, fmt.Sprintf(`
tenants:
  - slug: acme-corp
clients:
  - id: cl_reports
    tenant: acme-corp
    allowed_cidrs: [10.0.0.0/8]
issuers:
  - tenant: acme-corp
    name: keycloak
    issuer: https://idp.acme.example/realms/acme
    audiences: [api]
    algorithms: [RS256, ES256, EdDSA]
    jwks_uri: %s/realms/acme/protocol/openid-connect/certs
    leeway: 30s
    roles_claim: realm_access.roles
    required_claims: {typ: Bearer}
`, p.srv.URL))
	az := kg.authz(t)
	claims := func(extra map[string]any) map[string]any {
		now := time.Now()
		c := map[string]any{"iss": "https://idp.acme.example/realms/acme", "aud": []string{"api", "account"},
			"sub": "f3c2a1d0-1111-4c5e-9d7a-0a1b2c3d4e5f", "typ": "Bearer", "azp": "cl_reports",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "scope": "openid read:projects",
			"realm_access": map[string]any{"roles": []string{"reader", "offline_access"}}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	route := map[string]string{"keygate.scopes": "read:projects", "keygate.roles": "reader"}
	for _, k := range []signingKey{rs1, es, ed} {
		resp := checkJWT(t, az, k.sign(t, claims(nil)), route)
		if resp.GetStatus().GetCode() != 0 {
			t.Fatalf("%s token denied: %s; log:\n%s", k.alg, resp.GetDeniedResponse().GetBody(), kg.log.String())
		}
		h := okHeaders(resp)
		if h["x-tenant-id"] != "acme-corp" || h["x-auth-client-id"] != "cl_reports" || h["x-auth-scopes"] != "openid read:projects" {
			t.Errorf("%s: identity headers %v", k.alg, h)
		}
	}
	if resp := checkJWT(t, az, es.sign(t, claims(map[string]any{"typ": "Refresh"})), nil); denyCode(resp) != "token_not_valid" {
		t.Errorf("Keycloak refresh token (typ Refresh): %s", resp.GetDeniedResponse().GetBody())
	}
	if resp := checkJWT(t, az, es.sign(t, claims(map[string]any{"aud": "other"})), nil); denyCode(resp) != "token_not_valid" {
		t.Errorf("wrong audience: %s", resp.GetDeniedResponse().GetBody())
	}
	if resp := checkJWT(t, az, ed.sign(t, claims(nil)), map[string]string{"keygate.roles": "admin"}); denyCode(resp) != "insufficient_scope" {
		t.Errorf("missing role: %s", resp.GetDeniedResponse().GetBody())
	}

	// Rotation: the IdP publishes rsa-2, then signs with it, then drops
	// rsa-1. A client keeps sending the current token all along.
	rs2 := newSigningKey(t, dir, "RS256", "rsa-2")
	current := atomic.Pointer[string]{}
	tok1 := rs1.sign(t, claims(nil))
	current.Store(&tok1)
	var failures, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := az.Check(ctxT(t), envoyCheck("GET", "/v1/projects", map[string]string{"authorization": "Bearer " + *current.Load()}, nil))
			sent.Add(1)
			if err != nil || resp.GetStatus().GetCode() != 0 {
				failures.Add(1)
			}
		}
	}()
	before := p.fetches.Load()
	p.publish(t, rs1.jwk, rs2.jwk, es.jwk, ed.jwk)
	tok2 := rs2.sign(t, claims(nil))
	current.Store(&tok2)
	for range 50 {
		if resp := checkJWT(t, az, tok2, nil); resp.GetStatus().GetCode() != 0 {
			t.Fatalf("token of the new key denied: %s", resp.GetDeniedResponse().GetBody())
		}
	}
	p.publish(t, rs2.jwk, es.jwk, ed.jwk)
	for range 50 {
		if resp := checkJWT(t, az, tok2, nil); resp.GetStatus().GetCode() != 0 {
			t.Fatalf("after rsa-1 was dropped: %s", resp.GetDeniedResponse().GetBody())
		}
	}
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 || sent.Load() == 0 {
		t.Errorf("rotation: %d of %d requests failed", f, sent.Load())
	}
	if n := p.fetches.Load() - before; n != 1 {
		t.Errorf("rotation cost %d JWKS fetches, want 1 (the unknown kid)", n)
	}
	t.Logf("rotation: %d requests, 0 failed, %d fetch", sent.Load(), p.fetches.Load()-before)

	// A flood of tokens with unknown or crafted kids costs at most one
	// fetch per --jwks-min-refresh (here: none, the rotation's fetch was
	// less than a minute ago), and crafted kids none at all.
	before = p.fetches.Load()
	for _, kid := range []string{"../../etc/passwd", "' OR 1=1 --", "x/../../y"} {
		bad := signingKey{alg: rs2.alg, kid: kid, pemFile: rs2.pemFile}
		if resp := checkJWT(t, az, bad.sign(t, claims(nil)), nil); denyCode(resp) != "token_not_valid" {
			t.Errorf("kid %q: %s", kid, resp.GetDeniedResponse().GetBody())
		}
	}
	if n := p.fetches.Load() - before; n != 0 {
		t.Errorf("crafted kids caused %d fetches", n)
	}
	for i := range 20 {
		bad := signingKey{alg: rs2.alg, kid: fmt.Sprintf("unknown-%d", i), pemFile: rs2.pemFile}
		if resp := checkJWT(t, az, bad.sign(t, claims(nil)), nil); denyCode(resp) != "token_not_valid" {
			t.Errorf("unknown kid: %s", resp.GetDeniedResponse().GetBody())
		}
	}
	if n := p.fetches.Load() - before; n != 0 {
		t.Errorf("20 unknown kids caused %d fetches within --jwks-min-refresh", n)
	}
}

// TestMasterKeyRefusal: a store that holds an encrypted HS256 key does
// not start without its master key, or with another one.
func TestMasterKeyRefusal(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	kg := startKeygate(t, dataDir)
	kg.applyState(t, fmt.Sprintf(`
tenants: [{slug: acme-corp}]
issuers:
  - {tenant: acme-corp, name: django, algorithms: [HS256], jwks: {keys: [{kty: oct, k: %q}]}}
`, base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("s", 40)))))
	if err := kg.stop(t); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(dataDir, "master.key"), filepath.Join(dataDir, "master.key.moved"))
	missing := filepath.Join(t.TempDir(), "missing.key")
	for _, c := range []struct{ flag, want string }{
		{other, "the master key does not match"},
		{missing, "master key file"},
	} {
		out, err := exec.Command(keygateBin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--admin-addr", "127.0.0.1:0", "--data-dir", dataDir, "--master-key-file", c.flag).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("--master-key-file %s: exit %v, want 1; output:\n%s", c.flag, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("--master-key-file %s: output lacks %q:\n%s", c.flag, c.want, out)
		}
	}
	// Without --master-key-file keygate would generate a new dev key:
	// that key does not match either, so it still refuses.
	out, err := exec.Command(keygateBin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", dataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the master key does not match") {
		t.Errorf("with a fresh dev key: %v\n%s", err, out)
	}
}
