package credentials

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The seed corpora of the JWT fuzz tests are in testdata/fuzz/<Name>:
// real tokens of each algorithm (signed with the fixed test keys, valid
// at t0) and the attack cases of THREATS.md. Rewrite them with
//
//	go test -run=TestJWTFuzzCorpus -update-jwt-corpus ./credentials/
//
// and run a target with
//
//	go test -run=^$ -fuzz=^FuzzVerifyJWT$ -fuzztime=30s ./credentials/
var updateJWTCorpus = flag.Bool("update-jwt-corpus", false, "rewrite the JWT fuzz seed corpora in testdata/fuzz")

// jwtSeed is a token of the FuzzVerifyJWT corpus; valid ones are allowed
// by the JWT world at t0.
type jwtSeed struct {
	name  string
	tok   string
	valid bool
}

// jwtSeeds returns the real tokens and attack cases the JWT fuzz tests
// start from.
func jwtSeeds(t testing.TB) []jwtSeed {
	k := testJWTKeys()
	rs := func(kid string, c jwt.MapClaims) string { return mint(t, jwt.SigningMethodRS256, k.rsaA, kid, c) }
	good := rs("rsa-a", mainClaims())
	parts := strings.Split(good, ".")
	pem := []byte("-----BEGIN PUBLIC KEY-----\n") // the start is enough: HS256 is refused before any key
	return []jwtSeed{
		{"valid-RS256", good, true},
		{"valid-RS256-nokid", rs("", mainClaims("sub", "nokid")), true},
		{"valid-ES256", mint(t, jwt.SigningMethodES256, k.ec, "ec-1", mainClaims()), true},
		{"valid-EdDSA", mint(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", mainClaims()), true},
		{"valid-HS256-simplejwt", mint(t, jwt.SigningMethodHS256, k.hmac, "", djangoClaims()), true},
		{"valid-RS256-keycloak", mint(t, jwt.SigningMethodRS256, k.rsaB, "kc-1", keycloakClaims()), true},
		{"valid-RS256-jwks-uri", rs("r-a", remoteClaims()), true},
		{"valid-ES256-tenant-claim", mint(t, jwt.SigningMethodES256, k.ec, "shared-1", mainClaims("iss", issShared, "aud", deleted{}, "tenant", "globex")), true},
		{"valid-RS256-client-ver", rs("rsa-a", mainClaims("sub", "cl_ver", "ver", 3)), true},

		{"attack-alg-none", rawJWT(`{"alg":"none","typ":"JWT"}`, mainClaims(), ""), false},
		{"attack-alg-None", rawJWT(`{"alg":"None"}`, mainClaims(), ""), false},
		{"attack-alg-NONE-signed", rawJWT(`{"alg":"NONE"}`, mainClaims(), parts[2]), false},
		{"attack-alg-none-segments", b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", false},
		{"attack-hs256-rsa-public-key", mint(t, jwt.SigningMethodHS256, pem, "rsa-a", mainClaims()), false},
		{"attack-hs256-mixed-issuer", mint(t, jwt.SigningMethodHS256, pem, "", mainClaims("iss", issMixed, "aud", deleted{})), false},
		{"attack-rs384-not-allowed", mint(t, jwt.SigningMethodRS384, k.rsaA, "rsa-a", mainClaims()), false},
		{"attack-missing-exp", rs("rsa-a", mainClaims("exp", deleted{})), false},
		{"attack-expired", rs("rsa-a", mainClaims("exp", t0.Add(-time.Minute).Unix())), false},
		{"attack-nbf-future", rs("rsa-a", mainClaims("nbf", t0.Add(time.Hour).Unix())), false},
		{"attack-aud-empty", rs("rsa-a", mainClaims("aud", "")), false},
		{"attack-aud-number", rs("rsa-a", mainClaims("aud", 42)), false},
		{"attack-kid-path", rs("../../etc/passwd", mainClaims()), false},
		{"attack-kid-sql", rs("' OR 1=1 --", mainClaims()), false},
		{"attack-kid-remote-path", rs("../../etc/passwd", remoteClaims()), false},
		{"attack-refresh-simplejwt", mint(t, jwt.SigningMethodHS256, k.hmac, "", djangoClaims("token_type", "refresh")), false},
		{"attack-refresh-keycloak", mint(t, jwt.SigningMethodRS256, k.rsaB, "kc-1", keycloakClaims("typ", "Refresh")), false},
		{"attack-revoked-jti", rs("rsa-a", mainClaims("jti", "jti-revoked")), false},
		{"attack-ver-below", rs("rsa-a", mainClaims("sub", "cl_ver", "ver", 2)), false},
		{"attack-crit", rawJWT(`{"alg":"RS256","kid":"rsa-a","crit":["exp"]}`, mainClaims(), parts[2]), false},
		{"attack-tenant-claim-other", mint(t, jwt.SigningMethodES256, k.ec, "shared-1", mainClaims("iss", issShared, "aud", deleted{}, "tenant", "initech")), false},
		{"attack-payload-swapped", parts[0] + "." + b64([]byte(`{"iss":"`+issMain+`","aud":"api","sub":"admin","exp":9999999999}`)) + "." + parts[2], false},
		{"attack-header-not-object", b64([]byte(`["RS256"]`)) + "." + parts[1] + "." + parts[2], false},
		{"attack-four-segments", good + ".x", false},
	}
}

func FuzzSplitJWT(f *testing.F) {
	for _, s := range []string{"a.b.c", "abcd.b.", "abcd..c", "abc.b.c", "abcd.b.c.d", "ab=d.b.c", "abcd.b.c ", "e30.e30.e30", "eyJhbGciOiJub25lIn0.e30.", "", ".", ".."} {
		f.Add(s)
	}
	for _, s := range jwtSeeds(f) {
		f.Add(s.tok)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, p, sig, ok := splitJWT(s)
		want := strings.Count(s, ".") == 2
		if want {
			segs := strings.Split(s, ".")
			want = len(segs[0]) >= 4 && segs[1] != ""
			for _, c := range strings.ReplaceAll(s, ".", "") {
				if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c) {
					want = false
				}
			}
		}
		if ok != want {
			t.Fatalf("splitJWT(%q) ok = %v, want %v", s, ok, want)
		}
		if ok && h+"."+p+"."+sig != s {
			t.Fatalf("splitJWT(%q) = %q, %q, %q", s, h, p, sig)
		}
		if !ok && (h != "" || p != "" || sig != "") {
			t.Fatalf("splitJWT(%q) not ok but returned segments", s)
		}
		if isJWT(s) != (ok && decodesToObject(h)) {
			t.Fatalf("isJWT(%q) = %v", s, isJWT(s))
		}
	})
}

func FuzzDecodeJOSEHeader(f *testing.F) {
	for _, s := range []string{
		`{"alg":"RS256","kid":"k"}`, `{"alg":"none"}`, `{"alg":1}`, `{"kid":null}`, `{"kid":""}`, `{"crit":["exp"],"alg":"ES256"}`,
		`{"alg":"RS256","alg":"none"}`, `null`, `[]`, `"x"`, `{}`, `{"alg":"\u0000"}`, `{"alg":"RS256"} x`,
	} {
		f.Add(b64([]byte(s)))
	}
	f.Add("e30=")
	f.Add("!!!!")
	for _, s := range jwtSeeds(f) {
		h, _, _ := strings.Cut(s.tok, ".")
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		h, ok := decodeJOSEHeader(seg)
		if !ok {
			// Refused although an object: only for an alg or kid that is
			// not a string.
			if decodesToObject(seg) {
				b, _ := base64.RawURLEncoding.DecodeString(seg)
				var obj map[string]any
				if err := json.Unmarshal(b, &obj); err != nil {
					t.Fatalf("%q: decodesToObject, but %v", b, err)
				}
				_, algStr := obj["alg"].(string)
				_, kidStr := obj["kid"].(string)
				_, hasAlg := obj["alg"]
				_, hasKid := obj["kid"]
				if (!hasAlg || algStr) && (!hasKid || kidStr) {
					t.Fatalf("decodeJOSEHeader refused the header %q", b)
				}
			}
			return
		}
		b, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			t.Fatalf("decodeJOSEHeader(%q) ok, but it is not base64url: %v", seg, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
			t.Fatalf("decodeJOSEHeader(%q) ok, but %q is not a JSON object", seg, b)
		}
		if v, present := obj["alg"]; present && v != h.Alg || !present && h.Alg != "" {
			t.Fatalf("alg %v, decoded %q", v, h.Alg)
		}
		if v, present := obj["kid"]; present != h.HasKid || present && v != h.Kid || !present && h.Kid != "" {
			t.Fatalf("kid %v (%v), decoded %q (%v)", v, present, h.Kid, h.HasKid)
		}
		if _, present := obj["crit"]; present != h.HasCrit {
			t.Fatalf("crit present %v, HasCrit %v", present, h.HasCrit)
		}
	})
}

// jwksSeeds are JWKS documents as IdPs serve them, and broken ones.
func jwksSeeds() []string {
	k := testJWTKeys()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	rsa := rsaJWK(&k.rsaA.PublicKey, "r", "RS256")
	return []string{
		enc(jwks(rsa, ecJWK(&k.ec.PublicKey, "e"), edJWK(k.ed.Public().(ed25519.PublicKey), "d"), ecJWK(&k.ec384.PublicKey, "e384"))),
		`{"keys":[{"kid":"sig-1","kty":"RSA","alg":"RS256","use":"sig","n":"` + rsa.N + `","e":"AQAB","x5c":["MIIC"],"x5t":"a","x5t#S256":"b"},` +
			`{"kid":"enc-1","kty":"RSA","alg":"RSA-OAEP","use":"enc","n":"` + rsa.N + `","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","use":"sig","kid":"az","x5t":"az","n":"` + rsa.N + `","e":"AQAB","x5c":["MIIC"],"issuer":"https://login.microsoftonline.com/t/v2.0"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"` + rfc7515ECX + `","y":"` + rfc7515ECY + `","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + rfc8037X + `","alg":"EdDSA"},{"kty":"oct","k":"` + b64(k.hmac) + `"}]}`,
		`{"keys":[{"kty":"RSA","alg":"HS256","n":"` + rsa.N + `","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"` + rfc7515ECX + `","y":"` + rfc7515ECX + `"}]}`,
		enc(jwks(rsaJWK(&k.rsa1024.PublicKey, "weak", ""))),
		`{"keys":[]}`, `{"keys":null}`, `{"keys":[null,1,"x",[]]}`, `{}`, `null`, `[]`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
	}
}

func FuzzParseJWKS(f *testing.F) {
	for _, s := range jwksSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, skipped, err := ParseJWKS(data)
		if err != nil {
			if ks != nil {
				t.Fatal("a key set with an error")
			}
			return
		}
		if ks.Len() == 0 || len(ks.Kids()) != ks.Len() {
			t.Fatalf("no error, %d keys", ks.Len())
		}
		for _, k := range ks.keys {
			if k.family == famOct || k.family == famNone {
				t.Fatalf("key %q of family %v from a URL", k.kid, k.family)
			}
			if !k.fitsAny(SupportedAlgorithms) {
				t.Fatalf("key %q (%v, alg %q) fits no algorithm", k.kid, k.family, k.alg)
			}
			switch k.key.(type) {
			case []byte:
				t.Fatalf("secret key %q from a URL", k.kid)
			}
		}
		for _, s := range skipped {
			if !strings.HasPrefix(s, "keys[") || len(s) > 400 {
				t.Fatalf("skipped reason %q", s)
			}
		}
	})
}

// signedPart returns the JWS signing input of tok (header.payload).
func signedPart(tok string) string {
	if i := strings.LastIndexByte(tok, '.'); i >= 0 {
		return tok[:i]
	}
	return tok
}

// FuzzVerifyJWT sends arbitrary bearer tokens through Checker.Check with
// the JWT world's issuers: Check never fails, and it allows nothing but
// the valid seed tokens. Valid tokens are known by their signing input
// (header.payload): ECDSA signatures are randomized, so each fuzz worker
// process mints ES256 seeds with other signatures than the coordinator's.
func FuzzVerifyJWT(f *testing.F) {
	w := newJWTWorld(f)
	valid := map[string]bool{} // signing inputs
	for name, tok := range readCorpus(f, "FuzzVerifyJWT") {
		if strings.HasPrefix(name, "valid-") {
			valid[signedPart(tok)] = true
		}
	}
	for _, s := range jwtSeeds(f) {
		f.Add(s.tok)
		if s.valid {
			valid[signedPart(s.tok)] = true
		}
	}
	f.Fuzz(func(t *testing.T, tok string) {
		r := bearer(tok)
		d, err := w.c.Check(context.Background(), &r)
		if err != nil {
			t.Fatalf("Check() error %v", err)
		}
		key := strings.TrimLeft(tok, " ") // what the Authorization parser takes
		if d.Allowed() {
			if !valid[signedPart(key)] {
				t.Fatalf("allowed %q (%s)", tok, d.Reason)
			}
			if d.Method != MethodJWT || d.Identity == nil || d.Identity.Method != "jwt" || d.Issuer == "" {
				t.Fatalf("allowed %q with Method %v Identity %+v", tok, d.Method, d.Identity)
			}
		}
		if d.Code == TokenNotValid && !isJWT(key) {
			t.Fatalf("%q is not JWT-shaped but was verified as a JWT", tok)
		}
	})
}

// readCorpus returns the string inputs of testdata/fuzz/<name> by file
// name.
func readCorpus(t testing.TB, name string) map[string]string {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s/%s: not a one-value go test fuzz v1 file", dir, e.Name())
		}
		v := lines[1]
		var q string
		switch {
		case strings.HasPrefix(v, "string(") && strings.HasSuffix(v, ")"):
			q = v[len("string(") : len(v)-1]
		case strings.HasPrefix(v, "[]byte(") && strings.HasSuffix(v, ")"):
			q = v[len("[]byte(") : len(v)-1]
		default:
			t.Fatalf("%s/%s: unexpected value %.40s", dir, e.Name(), v)
		}
		s, err := strconv.Unquote(q)
		if err != nil {
			t.Fatalf("%s/%s: %v", dir, e.Name(), err)
		}
		out[e.Name()] = s
	}
	return out
}

func writeCorpus(t *testing.T, name, typ string, files map[string]string) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		body := fmt.Sprintf("go test fuzz v1\n%s(%s)\n", typ, strconv.Quote(files[n]))
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJWTFuzzCorpus checks the FuzzVerifyJWT seed corpus against the JWT
// world (its valid tokens are allowed, every other one is denied), and
// rewrites the JWT corpora with -update-jwt-corpus.
func TestJWTFuzzCorpus(t *testing.T) {
	if *updateJWTCorpus {
		seeds := jwtSeeds(t)
		toks, headers, seen := map[string]string{}, map[string]string{}, map[string]bool{}
		for _, s := range seeds {
			toks[s.name] = s.tok
			if h, _, _ := strings.Cut(s.tok, "."); !seen[h] {
				seen[h] = true
				headers[s.name] = h
			}
		}
		writeCorpus(t, "FuzzVerifyJWT", "string", toks)
		writeCorpus(t, "FuzzSplitJWT", "string", toks)
		writeCorpus(t, "FuzzDecodeJOSEHeader", "string", headers)
		docs := map[string]string{}
		for i, d := range jwksSeeds() {
			docs[fmt.Sprintf("jwks-%02d", i)] = d
		}
		writeCorpus(t, "FuzzParseJWKS", "[]byte", docs)
	}
	w := newJWTWorld(t)
	corpus := readCorpus(t, "FuzzVerifyJWT")
	if len(corpus) < 20 {
		t.Fatalf("%d seeds in the FuzzVerifyJWT corpus", len(corpus))
	}
	nValid := 0
	for name, tok := range corpus {
		r := bearer(tok)
		d := w.check(t, &r)
		valid := strings.HasPrefix(name, "valid-")
		if valid {
			nValid++
		}
		if d.Allowed() != valid {
			t.Errorf("%s: %q (%s)", name, d.Code, d.Reason)
		}
	}
	if nValid < 5 {
		t.Errorf("%d valid tokens in the corpus", nValid)
	}
	for _, name := range []string{"FuzzSplitJWT", "FuzzDecodeJOSEHeader", "FuzzParseJWKS"} {
		if len(readCorpus(t, name)) == 0 {
			t.Errorf("no %s corpus", name)
		}
	}
}
