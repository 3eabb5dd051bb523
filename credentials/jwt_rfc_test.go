package credentials

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Published vectors, copied from the RFCs.
const (
	// RFC 7515 §A.2.1: the RSA public key (n, e) and §A.2: the RS256 JWS.
	rfc7515RSAN  = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
	rfc7515RSAE  = "AQAB"
	rfc7515RS256 = "eyJhbGciOiJSUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"

	// RFC 7515 §A.3.1: the P-256 public key (x, y) and §A.3: the ES256 JWS.
	rfc7515ECX   = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
	rfc7515ECY   = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
	rfc7515ES256 = "eyJhbGciOiJFUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

	// RFC 8037 §A.1: the Ed25519 private key d; §A.2: its public key x;
	// §A.4: the EdDSA JWS of "Example of Ed25519 signing".
	rfc8037D     = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfc8037X     = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfc8037EdDSA = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc" +
		".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

	// The JWS Payload of RFC 7515 §3.3 and §A.2-A.3, CRLFs included.
	rfc7515Payload = "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
)

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%.20q... is not base64url: %v", s, err)
	}
	return b
}

// rfcChecker is a checker whose only issuer is the RFC's "joe", with key
// and alg, at a time before the RFC tokens' exp (1300819380).
func rfcChecker(t *testing.T, alg string, key JWK) (*Checker, *clock) {
	t.Helper()
	is := Issuer{
		Tenant: "rfc", Name: "joe", Issuer: "joe", Algorithms: []string{alg},
		JWKS: jwks(key),
		// The RFC's payload has no sub, and a verified token must name a
		// subject: iss ("joe") is the only string claim to take.
		SubjectClaim: "iss",
	}
	if err := is.Normalize("issuer", false); err != nil {
		t.Fatalf("the RFC's key is refused: %v", err)
	}
	idx := BuildIndex(IndexData{Revision: 1, Tenants: []Tenant{{Slug: "rfc"}}, Issuers: []Issuer{is}}, nil)
	clk := &clock{time.Unix(1300819000, 0)}
	return &Checker{Source: &source{idx}, Now: clk.Now}, clk
}

func TestJWTRFC7515(t *testing.T) {
	tests := []struct {
		name, alg, token string
		key              JWK
	}{
		{"A.2 RS256", "RS256", rfc7515RS256, JWK{Kty: "RSA", N: rfc7515RSAN, E: rfc7515RSAE}},
		{"A.3 ES256", "ES256", rfc7515ES256, JWK{Kty: "EC", Crv: "P-256", X: rfc7515ECX, Y: rfc7515ECY}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The vector is copied right: its segments decode to what the
			// RFC shows.
			parts := strings.Split(tt.token, ".")
			if len(parts) != 3 {
				t.Fatal("not three segments")
			}
			if got := string(mustB64(t, parts[0])); got != `{"alg":"`+tt.alg+`"}` {
				t.Errorf("header = %q", got)
			}
			if got := string(mustB64(t, parts[1])); got != rfc7515Payload {
				t.Errorf("payload = %q, want %q", got, rfc7515Payload)
			}
			wantSig := map[string]int{"RS256": 256, "ES256": 64}[tt.alg]
			if n := len(mustB64(t, parts[2])); n != wantSig {
				t.Errorf("signature of %d bytes, want %d", n, wantSig)
			}

			c, clk := rfcChecker(t, tt.alg, tt.key)
			check := func(tok string) Decision {
				t.Helper()
				r := bearer(tok)
				d, err := c.Check(context.Background(), &r)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			d := check(tt.token)
			if !d.Allowed() {
				t.Fatalf("RFC token: %q (%s)", d.Code, d.Reason)
			}
			want := Identity{TenantID: "rfc", Subject: "joe", Method: "jwt"}
			if *d.Identity != want || d.Issuer != "rfc/joe" || d.Method != MethodJWT {
				t.Errorf("Identity = %+v, Issuer %q, Method %v", *d.Identity, d.Issuer, d.Method)
			}

			// One bit of the signature flipped.
			sig := mustB64(t, parts[2])
			sig[len(sig)/2] ^= 1
			if d := check(parts[0] + "." + parts[1] + "." + b64(sig)); d.Code != TokenNotValid {
				t.Errorf("tampered signature: %q (%s)", d.Code, d.Reason)
			}
			// The payload changed (is_root false), the signature kept.
			forged := b64([]byte(strings.Replace(rfc7515Payload, "true", "fals", 1)))
			if d := check(parts[0] + "." + forged + "." + parts[2]); d.Code != TokenNotValid {
				t.Errorf("tampered payload: %q (%s)", d.Code, d.Reason)
			}
			// The same signature under another algorithm's name.
			other := map[string]string{"RS256": "RS384", "ES256": "ES384"}[tt.alg]
			if d := check(b64([]byte(`{"alg":"`+other+`"}`)) + "." + parts[1] + "." + parts[2]); d.Code != TokenNotValid {
				t.Errorf("alg %s: %q (%s)", other, d.Code, d.Reason)
			}
			// After exp (no leeway) the cached verification no longer counts.
			clk.t = time.Unix(1300819380, 0)
			if d := check(tt.token); d.Code != TokenNotValid {
				t.Errorf("at exp: %q (%s)", d.Code, d.Reason)
			}
		})
	}
}

// TestJWTRFC8037 verifies RFC 8037 §A.4 at the signature level: its
// payload is a sentence, not JWT claims, so no Check can allow it.
func TestJWTRFC8037(t *testing.T) {
	pk, err := parseJWK(&JWK{Kty: "OKP", Crv: "Ed25519", X: rfc8037X})
	if err != nil {
		t.Fatal(err)
	}
	if !pk.fits("EdDSA") || pk.fits("ES256") {
		t.Errorf("Ed25519 key fits EdDSA %v, ES256 %v", pk.fits("EdDSA"), pk.fits("ES256"))
	}
	// §A.1's private key has §A.2's public key, and Ed25519 signing is
	// deterministic: it makes §A.4's signature.
	priv := ed25519.NewKeyFromSeed(mustB64(t, rfc8037D))
	if !priv.Public().(ed25519.PublicKey).Equal(pk.key) {
		t.Fatal("§A.1's private key does not have §A.2's public key")
	}
	dot := strings.LastIndexByte(rfc8037EdDSA, '.')
	input, sigSeg := rfc8037EdDSA[:dot], rfc8037EdDSA[dot+1:]
	sig := mustB64(t, sigSeg)
	if b64(ed25519.Sign(priv, []byte(input))) != sigSeg {
		t.Error("signing §A.4's input with §A.1's key does not give §A.4's signature")
	}
	h, p, _, ok := splitJWT(rfc8037EdDSA)
	if !ok || string(mustB64(t, h)) != `{"alg":"EdDSA"}` || string(mustB64(t, p)) != "Example of Ed25519 signing" {
		t.Fatalf("the vector's segments: %q, %q, %v", mustB64(t, h), mustB64(t, p), ok)
	}

	if err := jwt.SigningMethodEdDSA.Verify(input, sig, pk.key); err != nil {
		t.Errorf("Verify(RFC 8037 §A.4) = %v", err)
	}
	bad := append([]byte(nil), sig...)
	bad[0] ^= 0x80
	if err := jwt.SigningMethodEdDSA.Verify(input, bad, pk.key); err == nil {
		t.Error("tampered signature verifies")
	}
	if err := jwt.SigningMethodEdDSA.Verify(input+"x", sig, pk.key); err == nil {
		t.Error("tampered input verifies")
	}

	// Through Check the vector is refused (its payload is not claims),
	// though its signature is good.
	idx := BuildIndex(IndexData{Tenants: []Tenant{{Slug: "rfc"}}, Issuers: []Issuer{{
		Tenant: "rfc", Name: "ed", Algorithms: []string{"EdDSA"}, JWKS: jwks(JWK{Kty: "OKP", Crv: "Ed25519", X: rfc8037X}),
	}}}, nil)
	c := &Checker{Source: &source{idx}, Now: func() time.Time { return t0 }}
	r := bearer(rfc8037EdDSA)
	if d, err := c.Check(context.Background(), &r); err != nil || d.Code != TokenNotValid {
		t.Errorf("Check(RFC 8037 §A.4) = %q (%s), %v", d.Code, d.Reason, err)
	}

	// A full EdDSA token signed by the RFC's key verifies through Check.
	tok := mint(t, jwt.SigningMethodEdDSA, priv, "", jwt.MapClaims{"sub": "ed-user", "exp": t0.Add(time.Hour).Unix()})
	r = bearer(tok)
	if d, err := c.Check(context.Background(), &r); err != nil || !d.Allowed() || d.Identity.Subject != "ed-user" {
		t.Errorf("Check(EdDSA token) = %q (%s), %v", d.Code, d.Reason, err)
	}
}
