package credentials

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIssuerNormalize(t *testing.T) {
	k := testJWTKeys()
	base := func() Issuer {
		return Issuer{Tenant: "acme", Name: "main", Issuer: "https://idp.test", Algorithms: []string{"RS256"},
			JWKS: jwks(rsaJWK(&k.rsaA.PublicKey, "a", ""))}
	}
	uri := func(is *Issuer) { is.JWKS, is.JWKSURI = nil, "https://idp.test/jwks" }
	tests := []struct {
		name  string
		edit  func(*Issuer)
		field string // ErrorField; "" for no error
		msg   string // substring of the message
	}{
		{name: "valid", edit: func(*Issuer) {}},
		{name: "valid jwks_uri", edit: uri},
		{name: "valid HS256 inline without iss", edit: func(is *Issuer) {
			is.Issuer, is.Algorithms, is.JWKS = "", []string{"HS256"}, jwks(octJWK(k.hmac, ""))
		}},
		{name: "valid leeway 60s", edit: func(is *Issuer) { is.Leeway = Duration(time.Minute) }},
		{name: "valid required claims", edit: func(is *Issuer) {
			is.RequiredClaims = map[string]any{"token_type": "access", "n": 1.0, "b": true, "j": json.Number("2")}
		}},
		{name: "valid every algorithm", edit: func(is *Issuer) {
			is.Algorithms = SupportedAlgorithms
			is.JWKS = jwks(rsaJWK(&k.rsaA.PublicKey, "", ""), octJWK(k.hmac, ""))
		}},

		{name: "no algorithms", edit: func(is *Issuer) { is.Algorithms = nil }, field: "x.algorithms", msg: "required"},
		{name: "empty algorithms", edit: func(is *Issuer) { is.Algorithms = []string{} }, field: "x.algorithms"},
		{name: "unknown algorithm", edit: func(is *Issuer) { is.Algorithms = []string{"RS256", "RS1"} }, field: "x.algorithms[1]", msg: `"RS1"`},
		{name: "alg none", edit: func(is *Issuer) { is.Algorithms = []string{"none"} }, field: "x.algorithms[0]"},
		{name: "alg lower case", edit: func(is *Issuer) { is.Algorithms = []string{"rs256"} }, field: "x.algorithms[0]"},
		{name: "leeway 61s", edit: func(is *Issuer) { is.Leeway = Duration(61 * time.Second) }, field: "x.leeway"},
		{name: "negative leeway", edit: func(is *Issuer) { is.Leeway = Duration(-time.Second) }, field: "x.leeway"},
		{name: "jwks and jwks_uri", edit: func(is *Issuer) { is.JWKSURI = "https://idp.test/jwks" }, field: "x.jwks_uri", msg: "not both"},
		{name: "neither jwks nor jwks_uri", edit: func(is *Issuer) { is.JWKS = nil }, field: "x.jwks"},
		// An empty key list is allowed: the issuer accepts nothing yet.
		{name: "valid empty jwks", edit: func(is *Issuer) { is.JWKS = jwks() }},
		{name: "101 keys", edit: func(is *Issuer) {
			for range 100 {
				is.JWKS.Keys = append(is.JWKS.Keys, is.JWKS.Keys[0])
			}
		}, field: "x.jwks.keys"},
		{name: "jwks_uri without issuer", edit: func(is *Issuer) { uri(is); is.Issuer = "" }, field: "x.issuer"},
		{name: "HS256 with jwks_uri", edit: func(is *Issuer) { uri(is); is.Algorithms = []string{"RS256", "HS256"} }, field: "x.algorithms", msg: "HS256"},
		{name: "jwks_uri scheme file", edit: func(is *Issuer) { uri(is); is.JWKSURI = "file://localhost/etc/passwd" }, field: "x.jwks_uri", msg: "scheme"},
		{name: "jwks_uri file without host", edit: func(is *Issuer) { uri(is); is.JWKSURI = "file:///etc/passwd" }, field: "x.jwks_uri"},
		{name: "jwks_uri scheme ftp", edit: func(is *Issuer) { uri(is); is.JWKSURI = "ftp://idp.test/jwks" }, field: "x.jwks_uri"},
		{name: "jwks_uri relative", edit: func(is *Issuer) { uri(is); is.JWKSURI = "/jwks" }, field: "x.jwks_uri"},
		{name: "jwks_uri with credentials", edit: func(is *Issuer) { uri(is); is.JWKSURI = "https://u:p@idp.test/jwks" }, field: "x.jwks_uri"},
		{name: "jwks_refresh too short", edit: func(is *Issuer) { uri(is); is.JWKSRefresh = Duration(time.Second) }, field: "x.jwks_refresh"},
		{name: "required claim object", edit: func(is *Issuer) { is.RequiredClaims = map[string]any{"typ": map[string]any{"a": 1}} }, field: "x.required_claims.typ"},
		{name: "required claim array", edit: func(is *Issuer) { is.RequiredClaims = map[string]any{"aud": []any{"a"}} }, field: "x.required_claims.aud"},
		{name: "required claim null", edit: func(is *Issuer) { is.RequiredClaims = map[string]any{"typ": nil} }, field: "x.required_claims.typ"},
		{name: "required claim bad name", edit: func(is *Issuer) { is.RequiredClaims = map[string]any{"a b": "x"} }, field: "x.required_claims.a b"},
		{name: "key fits none of the algorithms", edit: func(is *Issuer) { is.Algorithms = []string{"ES256"} }, field: "x.jwks.keys[0]", msg: "fits none"},
		{name: "P-384 key for ES256", edit: func(is *Issuer) {
			is.Algorithms, is.JWKS = []string{"ES256"}, jwks(ecJWK(&k.ec384.PublicKey, ""))
		}, field: "x.jwks.keys[0]", msg: "fits none"},
		{name: "key alg outside the allowlist", edit: func(is *Issuer) { is.JWKS = jwks(rsaJWK(&k.rsaA.PublicKey, "", "RS512")) }, field: "x.jwks.keys[0]", msg: "fits none"},
		{name: "weak key", edit: func(is *Issuer) { is.JWKS = jwks(rsaJWK(&k.rsa1024.PublicKey, "", "")) }, field: "x.jwks.keys[0]", msg: "1024"},
		{name: "short oct key", edit: func(is *Issuer) {
			is.Algorithms, is.JWKS = []string{"HS256"}, jwks(octJWK([]byte("django-insecure-short"), ""))
		}, field: "x.jwks.keys[0]", msg: "bytes"},
		{name: "oct key without k", edit: func(is *Issuer) { is.Algorithms, is.JWKS = []string{"HS256"}, jwks(JWK{Kty: "oct", Kid: "h"}) }, field: "x.jwks.keys[0]"},
		{name: "bad tenant", edit: func(is *Issuer) { is.Tenant = "Acme" }, field: "x.tenant"},
		{name: "bad name", edit: func(is *Issuer) { is.Name = "a/b" }, field: "x.name"},
		{name: "issuer with a newline", edit: func(is *Issuer) { is.Issuer = "https://idp.test\n" }, field: "x.issuer"},
		{name: "empty audience", edit: func(is *Issuer) { is.Audiences = []string{"api", ""} }, field: "x.audiences[1]"},
		{name: "subject claim with a space", edit: func(is *Issuer) { is.SubjectClaim = "user id" }, field: "x.subject_claim"},
		{name: "tenant claim too long", edit: func(is *Issuer) { is.TenantClaim = strings.Repeat("t", 129) }, field: "x.tenant_claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := base()
			tt.edit(&is)
			err := is.Normalize("x", false)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Normalize() = %v", err)
				}
				return
			}
			if ErrorCode(err) != EInvalid || ErrorField(err) != tt.field || !strings.Contains(ErrorMessage(err), tt.msg) {
				t.Fatalf("Normalize() = %v; want field %q, message with %q", err, tt.field, tt.msg)
			}
		})
	}

	// Defaults: a jwks_uri issuer gets the default refresh.
	is := base()
	uri(&is)
	if err := is.Normalize("", false); err != nil || time.Duration(is.JWKSRefresh) != DefaultJWKSRefresh {
		t.Errorf("JWKSRefresh = %v, %v", time.Duration(is.JWKSRefresh), err)
	}
	// keepSecrets: an oct key without k names a stored key by kid.
	is = Issuer{Tenant: "acme", Name: "h", Algorithms: []string{"HS256"}, JWKS: jwks(JWK{Kty: "oct", Kid: "h1"})}
	if err := is.Normalize("", true); err != nil {
		t.Errorf("keepSecrets with kid: %v", err)
	}
	// Without keepSecrets it is refused.
	if err := is.Normalize("", false); ErrorField(err) != "jwks.keys[0]" {
		t.Errorf("oct key without k: %v", err)
	}
}

// TestIssuerJSON: an issuer document as admins and IdPs write it.
func TestIssuerJSON(t *testing.T) {
	k := testJWTKeys()
	rsa := rsaJWK(&k.rsaA.PublicKey, "", "")
	// A Keycloak/Azure-style JWK with members keygate does not use.
	doc := `{"tenant":"acme","name":"kc","issuer":"https://kc.test/realms/acme","algorithms":["RS256"],
	  "leeway":"30s","required_claims":{"typ":"Bearer","n":1},
	  "jwks":{"keys":[{"kid":"k1","kty":"RSA","alg":"RS256","use":"sig","n":"` + rsa.N + `","e":"AQAB",
	    "x5c":["MIICrTCCAZUCBgGH"],"x5t":"Yk9b","x5t#S256":"m3Nk","key_ops":["verify"],"issuer":"https://login.microsoftonline.com/x/v2.0",
	    "ext":true,"nbf":1,"cloud_instance_name":"microsoftonline.com"}]}}`
	var is Issuer
	if err := DecodeStrict([]byte(doc), &is); err != nil {
		t.Fatalf("DecodeStrict: %v", err)
	}
	if err := is.Normalize("", false); err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	want := JWK{Kty: "RSA", Kid: "k1", Alg: "RS256", Use: "sig", N: rsa.N, E: "AQAB"}
	if diff := cmp.Diff(want, is.JWKS.Keys[0]); diff != "" {
		t.Errorf("JWK (-want +got):\n%s", diff)
	}
	if time.Duration(is.Leeway) != 30*time.Second {
		t.Errorf("Leeway = %v", time.Duration(is.Leeway))
	}
	// Dropped members stay dropped on output.
	out, err := json.Marshal(is)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"x5c", "x5t", "key_ops", "microsoftonline"} {
		if bytes.Contains(out, []byte(m)) {
			t.Errorf("output keeps %q: %s", m, out)
		}
	}
	if !bytes.Contains(out, []byte(`"leeway":"30s"`)) {
		t.Errorf("leeway not a duration string: %s", out)
	}
}

func TestJWKUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    JWK
		wantErr string
	}{
		{name: "public", in: `{"kty":"OKP","crv":"Ed25519","x":"` + rfc8037X + `","kid":"k"}`, want: JWK{Kty: "OKP", Crv: "Ed25519", X: rfc8037X, Kid: "k"}},
		{name: "extra members", in: `{"kty":"oct","k":"c2VjcmV0","x5c":[],"x5t":"a","x5t#S256":"b","key_ops":["sign"],"issuer":"i","ext":true}`, want: JWK{Kty: "oct", K: "c2VjcmV0"}},
		{name: "null member", in: `{"kty":"RSA","kid":null}`, want: JWK{Kty: "RSA"}},
		{name: "private d", in: `{"kty":"OKP","crv":"Ed25519","x":"` + rfc8037X + `","d":"` + rfc8037D + `"}`, wantErr: "d"},
		{name: "private RSA members", in: `{"kty":"RSA","n":"AQAB","e":"AQAB","p":"AQ","q":"AQ"}`, wantErr: "p"},
		{name: "private d null", in: `{"kty":"EC","d":null}`, wantErr: "d"},
		{name: "kid a number", in: `{"kty":"RSA","kid":1}`, wantErr: "kid"},
		{name: "n an array", in: `{"kty":"RSA","n":["AQAB"]}`, wantErr: "n"},
		{name: "array", in: `[]`, wantErr: "cannot unmarshal"},
		{name: "null", in: `null`, wantErr: "JSON object"},
		{name: "string", in: `"kty"`, wantErr: "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := JWK{Kid: "stale", X: "stale"}
			err := json.Unmarshal([]byte(tt.in), &j)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal() = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if j != tt.want {
				t.Errorf("got %+v, want %+v", j, tt.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	for in, want := range map[string]time.Duration{`"30s"`: 30 * time.Second, `"1m"`: time.Minute, `"0s"`: 0, `"1h2m"`: time.Hour + 2*time.Minute} {
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("Unmarshal(%s) = %v, %v", in, time.Duration(d), err)
		}
	}
	for _, in := range []string{`30`, `"30"`, `"soon"`, `null`, `{}`} {
		d = 7
		if err := json.Unmarshal([]byte(in), &d); (err == nil && in != `null`) || d != 7 {
			t.Errorf("Unmarshal(%s) = %v, %v", in, time.Duration(d), err)
		}
	}
	if b, err := json.Marshal(Duration(90 * time.Second)); err != nil || string(b) != `"1m30s"` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
}

func TestRevocationValidate(t *testing.T) {
	for _, tc := range []struct {
		r     Revocation
		field string
	}{
		{Revocation{JTI: "j", ExpiresAt: t0}, ""},
		{Revocation{JTI: "", ExpiresAt: t0}, "r.jti"},
		{Revocation{JTI: strings.Repeat("j", 257), ExpiresAt: t0}, "r.jti"},
		{Revocation{JTI: "j\n", ExpiresAt: t0}, "r.jti"},
		{Revocation{JTI: "j"}, "r.expires_at"},
	} {
		if err := tc.r.Validate("r"); ErrorField(err) != tc.field || (tc.field == "") != (err == nil) {
			t.Errorf("Validate(%+v) = %v, want field %q", tc.r, err, tc.field)
		}
	}
}

// TestIssuerRedacted: oct secrets are never returned; the original keeps
// them.
func TestIssuerRedacted(t *testing.T) {
	k := testJWTKeys()
	is := Issuer{Tenant: "acme", Name: "h", Algorithms: []string{"HS256", "RS256"},
		JWKS: jwks(octJWK(k.hmac, "h1"), rsaJWK(&k.rsaA.PublicKey, "r", ""))}
	if !is.HasSecrets() {
		t.Error("HasSecrets() = false")
	}
	red := is.Redacted()
	if red.JWKS.Keys[0].K != "" || is.JWKS.Keys[0].K == "" || red.JWKS.Keys[1].N != is.JWKS.Keys[1].N {
		t.Errorf("Redacted() = %+v (original %+v)", red.JWKS, is.JWKS)
	}
	b, _ := json.Marshal(red)
	if bytes.Contains(b, []byte(b64(k.hmac))) {
		t.Errorf("redacted JSON has the secret: %s", b)
	}
	if (&Issuer{JWKSURI: "https://x"}).HasSecrets() {
		t.Error("jwks_uri issuer has secrets")
	}
}
