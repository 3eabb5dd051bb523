package credentials

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseJWK(t *testing.T) {
	k := testJWTKeys()
	rsaA := rsaJWK(&k.rsaA.PublicKey, "a", "")
	ec := ecJWK(&k.ec.PublicKey, "e")
	ec384 := ecJWK(&k.ec384.PublicKey, "e384")
	ed := edJWK(k.ed.Public().(ed25519.PublicKey), "d")
	oct := octJWK(k.hmac, "h")
	with := func(j JWK, f func(*JWK)) JWK { f(&j); return j }
	// A point off the curve: the key's y plus one.
	offCurve := with(ec, func(j *JWK) {
		y := new(big.Int).SetBytes(mustB64(t, j.Y))
		j.Y = b64(y.Add(y, big.NewInt(1)).FillBytes(make([]byte, 32)))
	})

	tests := []struct {
		name    string
		jwk     JWK
		family  keyFamily
		fits    []string // algorithms it fits (when it parses)
		wantErr string   // substring; "" for success
	}{
		{name: "RSA", jwk: rsaA, family: famRSA, fits: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{name: "RSA use sig", jwk: with(rsaA, func(j *JWK) { j.Use = "sig" }), family: famRSA, fits: []string{"RS256"}},
		{name: "RSA alg RS384", jwk: with(rsaA, func(j *JWK) { j.Alg = "RS384" }), family: famRSA, fits: []string{"RS384"}},
		{name: "RSA padded base64", jwk: with(rsaA, func(j *JWK) { j.E = "AQAB" }), family: famRSA, fits: []string{"RS256"}},
		{name: "EC P-256", jwk: ec, family: famP256, fits: []string{"ES256"}},
		{name: "EC P-384", jwk: ec384, family: famP384, fits: []string{"ES384"}},
		{name: "Ed25519", jwk: ed, family: famEd25519, fits: []string{"EdDSA"}},
		{name: "oct", jwk: oct, family: famOct, fits: []string{"HS256", "HS384", "HS512"}},
		{name: "oct of exactly 32 bytes", jwk: octJWK([]byte(strings.Repeat("s", 32)), ""), family: famOct, fits: []string{"HS256"}},

		{name: "use enc", jwk: with(rsaA, func(j *JWK) { j.Use = "enc" }), wantErr: "use"},
		{name: "use enc on oct", jwk: with(oct, func(j *JWK) { j.Use = "enc" }), wantErr: "use"},
		{name: "unknown alg", jwk: with(rsaA, func(j *JWK) { j.Alg = "RSA-OAEP" }), wantErr: "alg"},
		{name: "alg none", jwk: with(rsaA, func(j *JWK) { j.Alg = "none" }), wantErr: "alg"},
		{name: "alg of another key type", jwk: with(rsaA, func(j *JWK) { j.Alg = "ES256" }), wantErr: "alg"},
		{name: "HS256 alg on an RSA key", jwk: with(rsaA, func(j *JWK) { j.Alg = "HS256" }), wantErr: "alg"},
		{name: "ES384 alg on a P-256 key", jwk: with(ec, func(j *JWK) { j.Alg = "ES384" }), wantErr: "alg"},
		{name: "RS256 alg on an oct key", jwk: with(oct, func(j *JWK) { j.Alg = "RS256" }), wantErr: "alg"},
		{name: "RSA 1024 bits", jwk: rsaJWK(&k.rsa1024.PublicKey, "", ""), wantErr: "1024 bits"},
		{name: "RSA 2047 bits", jwk: with(rsaA, func(j *JWK) {
			n := new(big.Int).Rsh(new(big.Int).SetBytes(mustB64(t, j.N)), 1)
			j.N = b64(n.Bytes())
		}), wantErr: "2047 bits"},
		{name: "RSA even e", jwk: with(rsaA, func(j *JWK) { j.E = b64([]byte{1, 0, 0}) }), wantErr: "e must be"},
		{name: "RSA e 1", jwk: with(rsaA, func(j *JWK) { j.E = b64([]byte{1}) }), wantErr: "e must be"},
		{name: "RSA huge e", jwk: with(rsaA, func(j *JWK) { j.E = b64([]byte{1, 0, 0, 0, 1}) }), wantErr: "e must be"},
		{name: "RSA without n", jwk: with(rsaA, func(j *JWK) { j.N = "" }), wantErr: "n and e"},
		{name: "RSA n not base64url", jwk: with(rsaA, func(j *JWK) { j.N = "a+b/" }), wantErr: "n and e"},
		{name: "EC point not on the curve", jwk: offCurve, wantErr: "not on the curve"},
		{name: "EC zero point", jwk: with(ec, func(j *JWK) { j.X, j.Y = b64(make([]byte, 32)), b64(make([]byte, 32)) }), wantErr: "not on the curve"},
		{name: "EC short x", jwk: with(ec, func(j *JWK) { j.X = b64(make([]byte, 31)) }), wantErr: "32 bytes"},
		{name: "EC P-384 coordinates on P-256", jwk: with(ec384, func(j *JWK) { j.Crv = "P-256" }), wantErr: "32 bytes"},
		{name: "EC secp256k1", jwk: with(ec, func(j *JWK) { j.Crv = "secp256k1" }), wantErr: "crv"},
		{name: "OKP X25519", jwk: with(ed, func(j *JWK) { j.Crv = "X25519" }), wantErr: "crv"},
		{name: "OKP short x", jwk: with(ed, func(j *JWK) { j.X = b64(make([]byte, 31)) }), wantErr: "32 bytes"},
		{name: "oct of 31 bytes", jwk: octJWK([]byte(strings.Repeat("s", 31)), ""), wantErr: "31 bytes"},
		{name: "oct empty", jwk: JWK{Kty: "oct"}, wantErr: "0 bytes"},
		{name: "oct not base64url", jwk: JWK{Kty: "oct", K: strings.Repeat("*", 44)}, wantErr: "base64url"},
		{name: "no kty", jwk: JWK{N: rsaA.N, E: rsaA.E}, wantErr: "kty"},
		{name: "unknown kty", jwk: with(rsaA, func(j *JWK) { j.Kty = "rsa" }), wantErr: "kty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk, err := parseJWK(&tt.jwk)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseJWK() = %v, want an error with %q", err, tt.wantErr)
				}
				if _, err := NewKeySet(jwks(tt.jwk)); err == nil {
					t.Error("NewKeySet accepts it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pk.family != tt.family || pk.kid != tt.jwk.Kid {
				t.Errorf("family %v kid %q, want %v %q", pk.family, pk.kid, tt.family, tt.jwk.Kid)
			}
			for _, a := range tt.fits {
				if !pk.fits(a) {
					t.Errorf("does not fit %s", a)
				}
			}
			for _, a := range SupportedAlgorithms {
				if pk.fits(a) != (algFamilies[a] == pk.family && (pk.alg == "" || pk.alg == a)) {
					t.Errorf("fits(%s) = %v", a, pk.fits(a))
				}
			}
		})
	}
}

// TestKeySetCandidates: keys by kid; without kid, at most four keys of
// the algorithm's family, in order.
func TestKeySetCandidates(t *testing.T) {
	k := testJWTKeys()
	a, b := rsaJWK(&k.rsaA.PublicKey, "a", ""), rsaJWK(&k.rsaB.PublicKey, "b", "")
	e := ecJWK(&k.ec.PublicKey, "e")
	d := edJWK(k.ed.Public().(ed25519.PublicKey), "d")
	a384 := rsaJWK(&k.rsaA.PublicKey, "a384", "RS384")
	noKid := rsaJWK(&k.rsaB.PublicKey, "", "")
	ks := mustKeySet(t, a, e, b, d, a384, noKid, noKid, noKid)
	if ks.Len() != 8 || strings.Join(ks.Kids(), ",") != "a,e,b,d,a384,,," {
		t.Fatalf("Len %d, Kids %q", ks.Len(), ks.Kids())
	}
	count := func(alg, kid string) int { return len(ks.candidates(alg, kid, nil)) }
	for _, tc := range []struct {
		alg, kid string
		want     int
	}{
		{"RS256", "a", 1}, {"RS256", "b", 1}, {"RS256", "e", 0}, {"ES256", "e", 1}, {"EdDSA", "d", 1},
		{"RS256", "a384", 0}, {"RS384", "a384", 1}, {"RS256", "nope", 0}, {"HS256", "a", 0},
		{"RS256", "", 4}, // a, b, and two of the kid-less keys: at most four
		{"ES256", "", 1}, {"ES384", "", 0}, {"EdDSA", "", 1}, {"HS256", "", 0},
	} {
		if got := count(tc.alg, tc.kid); got != tc.want {
			t.Errorf("candidates(%s, %q) = %d keys, want %d", tc.alg, tc.kid, got, tc.want)
		}
	}
	if !ks.hasKid("a384") || ks.hasKid("z") || (*KeySet)(nil).hasKid("a") || (*KeySet)(nil).Len() != 0 {
		t.Error("hasKid / nil set")
	}
	if got := (*KeySet)(nil).candidates("RS256", "", nil); len(got) != 0 {
		t.Error("nil set has candidates")
	}
}

func TestNewKeySet(t *testing.T) {
	k := testJWTKeys()
	if ks, err := NewKeySet(nil); err != nil || ks.Len() != 0 {
		t.Errorf("NewKeySet(nil) = %v, %v", ks, err)
	}
	good := rsaJWK(&k.rsaA.PublicKey, "a", "")
	bad := good
	bad.Use = "enc"
	_, err := NewKeySet(jwks(good, bad))
	if err == nil || !strings.Contains(err.Error(), "keys[1]") {
		t.Errorf("NewKeySet with an enc key = %v, want an error naming keys[1]", err)
	}
}

func TestParseJWKS(t *testing.T) {
	k := testJWTKeys()
	js := func(keys ...any) []byte {
		b, err := json.Marshal(map[string]any{"keys": append([]any{}, keys...)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rsa := rsaJWK(&k.rsaA.PublicKey, "a", "RS256")
	enc := rsaJWK(&k.rsaB.PublicKey, "enc-1", "")
	enc.Use = "enc"
	// What Keycloak serves: a signing key with x5c/x5t, an encryption key
	// with alg RSA-OAEP.
	keycloak := []byte(`{"keys":[
		{"kid":"sig-1","kty":"RSA","alg":"RS256","use":"sig","n":"` + rsa.N + `","e":"AQAB",
		 "x5c":["MIICmzCCAYMCBgGH"],"x5t":"q0h3kH0","x5t#S256":"3dvVYk","key_ops":["verify"]},
		{"kid":"enc-1","kty":"RSA","alg":"RSA-OAEP","use":"enc","n":"` + rsa.N + `","e":"AQAB"}]}`)
	tests := []struct {
		name    string
		doc     []byte
		kids    []string
		skipped int
		wantErr string
	}{
		{name: "one key", doc: js(rsa), kids: []string{"a"}},
		{name: "keycloak", doc: keycloak, kids: []string{"sig-1"}, skipped: 1},
		{name: "enc key skipped", doc: js(rsa, enc), kids: []string{"a"}, skipped: 1},
		{name: "oct key skipped", doc: js(rsa, octJWK(k.hmac, "h")), kids: []string{"a"}, skipped: 1},
		{name: "private key skipped", doc: js(map[string]string{"kty": "EC", "crv": "P-256", "kid": "p", "x": "AA", "y": "AA", "d": "AA"}, rsa), kids: []string{"a"}, skipped: 1},
		{name: "weak key skipped", doc: js(rsaJWK(&k.rsa1024.PublicKey, "w", ""), rsa), kids: []string{"a"}, skipped: 1},
		{name: "unknown kty skipped", doc: js(map[string]string{"kty": "PQC", "kid": "q"}, ecJWK(&k.ec.PublicKey, "e")), kids: []string{"e"}, skipped: 1},
		{name: "not an object skipped", doc: js("x", 1, nil, rsa), kids: []string{"a"}, skipped: 3},
		{name: "only unusable keys", doc: js(enc), skipped: 1, wantErr: "no usable"},
		{name: "empty set", doc: js(), wantErr: "no usable"},
		{name: "no keys member", doc: []byte(`{"jwks":[]}`), wantErr: "no \"keys\""},
		{name: "keys null", doc: []byte(`{"keys":null}`), wantErr: "no \"keys\""},
		{name: "keys not an array", doc: []byte(`{"keys":{}}`), wantErr: "not a JWKS"},
		{name: "null", doc: []byte(`null`), wantErr: "no \"keys\""},
		{name: "HTML error page", doc: []byte(`<html>502</html>`), wantErr: "not a JWKS"},
		{name: "over 1 MiB", doc: append(js(rsa), make([]byte, MaxJWKSBytes)...), wantErr: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, skipped, err := ParseJWKS(tt.doc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ks != nil {
					t.Fatalf("ParseJWKS() = %v, %v; want an error with %q", ks, err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if got := strings.Join(ks.Kids(), ","); got != strings.Join(tt.kids, ",") {
				t.Errorf("kids %q, want %q", got, tt.kids)
			}
			if len(skipped) != tt.skipped {
				t.Errorf("skipped %q, want %d", skipped, tt.skipped)
			}
			for _, s := range skipped {
				if !strings.HasPrefix(s, "keys[") {
					t.Errorf("skipped reason %q does not name the key", s)
				}
			}
		})
	}

	// A key from a JWKS document verifies a token.
	ks, _, err := ParseJWKS(keycloak)
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, jwt.SigningMethodRS256, k.rsaA, "sig-1", jwt.MapClaims{"sub": "x"})
	parts := strings.Split(tok, ".")
	keys := ks.candidates("RS256", "sig-1", nil)
	if len(keys) != 1 {
		t.Fatalf("%d candidates", len(keys))
	}
	if err := jwt.SigningMethodRS256.Verify(parts[0]+"."+parts[1], mustB64(t, parts[2]), keys[0]); err != nil {
		t.Errorf("Verify with the JWKS key: %v", err)
	}
}

// TestParseJWKSLongKid: a skipped key's kid is clipped in the reason.
func TestParseJWKSLongKid(t *testing.T) {
	doc := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":%q,"n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","x":%q}]}`,
		strings.Repeat("k", 5000), rfc8037X)
	_, skipped, err := ParseJWKS([]byte(doc))
	if err != nil || len(skipped) != 1 || len(skipped[0]) > 200 {
		t.Errorf("ParseJWKS() skipped %d reasons (%d bytes), %v", len(skipped), len(skipped[0]), err)
	}
}
