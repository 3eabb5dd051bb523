package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"
)

// The seed corpora are in testdata/fuzz/FuzzXxx; these f.Add seeds cover
// the shapes that matter most. Run one with
//
//	go test -run=^$ -fuzz=FuzzCheckKeyFormat -fuzztime=20s ./credentials/

func FuzzCheckKeyFormat(f *testing.F) {
	for _, s := range []string{GenerateAPIKey(), "kg_", "kg_" + strings.Repeat("0", 46), "-egJfbZ6JSlwHgJbbDCdNcFlEyVpbdtZDrvEhjejXWE", "a,b", "", strings.Repeat("x", 600)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := CheckKeyFormat(key)
		if (CheckImportableKey(key) == nil) != (err == nil) {
			t.Fatalf("CheckImportableKey and CheckKeyFormat disagree on %q", key)
		}
		if HashKey(key) != sha256.Sum256([]byte(key)) {
			t.Fatalf("HashKey(%q) is not SHA-256", key)
		}
		if err != nil {
			return
		}
		if strings.HasPrefix(key, KeyPrefix) {
			// An accepted kg_ key re-verifies by the spec's definition.
			if len(key) != GeneratedLen || !generatedRE.MatchString(key) || base62Checksum(key[3:43]) != key[43:] {
				t.Fatalf("accepted %q, which is not a valid generated key", key)
			}
			return
		}
		if len(key) < MinImportLen || len(key) > MaxKeyLen || strings.ContainsAny(key, ",;\"\\ ") {
			t.Fatalf("accepted %q", key)
		}
		for i := 0; i < len(key); i++ {
			if key[i] < '!' || key[i] > '~' {
				t.Fatalf("accepted %q with byte %#x", key, key[i])
			}
		}
	})
}

// FuzzParseAuthorization drives Checker.findCredential (and isJWT) with
// arbitrary Authorization and X-API-Key values, and checks that Check
// allows only the one key that is in the index.
func FuzzParseAuthorization(f *testing.F) {
	w := newWorld(f)
	known := w.keys["acme"]
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		"Bearer " + known, "ApiKey " + known, "Token " + known, "bearer  " + known, "Basic dXNlcjpwYXNz",
		"Bearer " + jwtShaped("c2ln"), "Bearer " + jwtShaped(""), "Bearer " + enc([]byte("null")) + ".e30.",
		"Bearer " + enc([]byte("[1]")) + ".e30.x", "Bearer a.b.c", "Bearer e30..x", "Bearer ", "Bearer", "",
	} {
		f.Add(s, "", false)
		f.Add(s, known, true)
	}
	f.Fuzz(func(t *testing.T, authorization, apiKey string, hasAPIKey bool) {
		r := &Request{Policy: DefaultPolicy, Authorization: authorization, HasAuthorization: true, APIKey: apiKey, HasAPIKey: hasAPIKey}
		key, src, code, _ := w.c.findCredential(r)
		if len(authorization) > maxAuthHeader && code == Allow {
			t.Fatal("oversized Authorization accepted")
		}
		if code == Allow && src == FromAuthorization && !strings.HasSuffix(authorization, key) {
			t.Fatalf("credential %q is not from %q", key, authorization)
		}
		if isJWT(key) {
			first, _, _ := strings.Cut(key, ".")
			if strings.Count(key, ".") != 2 || !decodesToObject(first) {
				t.Fatalf("isJWT(%q) but not JWT-shaped", key)
			}
		}
		d, err := w.c.Check(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		// An allow is for exactly the key that is in the index.
		if d.Allowed() && (d.Identity == nil || key != w.keys[strings.TrimPrefix(d.Identity.KeyID, "ak_")]) {
			t.Fatalf("allowed %q (auth %q, x-api-key %q)", key, authorization, apiKey)
		}
		if utf8.ValidString(authorization) && strings.Contains(authorization, ",") && d.Allowed() && src == FromAuthorization {
			t.Fatalf("allowed a comma-joined credential %q", authorization)
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range [][2]string{
		{ExtMethods, "apikey,jwt"}, {ExtScopes, "read:*, write:x"}, {ExtRoles, "admin"}, {ExtTenant, "acme"},
		{ExtAnonymous, "true"}, {ExtQueryKey, "false"}, {ExtCookieKey, "kg"}, {ExtKeepJWT, ""},
		{"keygate.other", "x"}, {"KEYGATE.SCOPES", "x"}, {"route", "x"}, {ExtScopes, ","},
	} {
		f.Add(s[0], s[1], ExtMethods, "hmac")
	}
	def := Policy{Methods: MethodAPIKey, Scopes: "read"}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		ext := map[string]string{k1: v1, k2: v2}
		p, err := ParsePolicy(ext, def)
		if err != nil {
			return
		}
		ours := 0
		for k, v := range ext {
			if len(k) < 8 || !strings.EqualFold(k[:8], "keygate.") {
				continue
			}
			ours++
			switch k {
			case ExtMethods:
				if m, err := ParseMethods(v); err != nil || m != p.Methods {
					t.Fatalf("methods %q → %v", v, p.Methods)
				}
			case ExtScopes, ExtRoles:
				if checkList(v) != nil {
					t.Fatalf("%s %q accepted", k, v)
				}
				eachItem(v, func(s string) bool {
					if !tokenRE.MatchString(s) {
						t.Fatalf("%s item %q accepted", k, s)
					}
					return true
				})
			case ExtTenant:
				if !ValidSlug(p.Tenant) {
					t.Fatalf("tenant %q accepted", p.Tenant)
				}
			case ExtAnonymous, ExtQueryKey, ExtKeepJWT:
				if v != "true" && v != "false" && v != "" {
					t.Fatalf("%s %q accepted", k, v)
				}
			case ExtCookieKey:
				if !cookieNameOK(p.CookieKey) {
					t.Fatalf("cookie %q accepted", p.CookieKey)
				}
			default:
				t.Fatalf("unknown setting %q accepted", k)
			}
		}
		if ours == 0 && p != def {
			t.Fatalf("non-keygate settings changed the policy: %+v", p)
		}
	})
}

func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{"10/second", "1/s", "600/min", "10000/hour", "5/d", "1000000000/second", "0/s", "+1/s", "1/", "/s", "01/m", "1/week"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseRateLimit(s)
		if err != nil {
			if l != (RateLimit{}) {
				t.Fatalf("error with a value: %+v", l)
			}
			return
		}
		if l.N < 1 || l.N > 1_000_000_000 || l.Period < 1e9 {
			t.Fatalf("ParseRateLimit(%q) = %+v", s, l)
		}
		back, err := ParseRateLimit(l.String())
		if err != nil || back != l {
			t.Fatalf("ParseRateLimit(%q).String() = %q → %+v, %v", s, l.String(), back, err)
		}
		b := newBucket(l)
		if b.interval < 1 || b.burst < 0 || b.take(1) != 0 {
			t.Fatalf("bucket of %+v: %+v", l, b)
		}
	})
}

func FuzzSnapshotDecode(f *testing.F) {
	for _, s := range []string{
		`{"tenants":[{"slug":"acme"}],"clients":[{"id":"cl_a","tenant":"acme","rate_limit":"10/s","allowed_cidrs":["10.0.0.0/8"],"apikeys":[{"id":"ak_a","key":"-egJfbZ6JSlwHgJbbDCdNcFlEyVpbdtZDrvEhjejXWE"}]}]}`,
		`{"clients":[{"id":"cl_a","tenant":"acme","apikeys":[{"id":"ak_a","key_sha256":"` + strings.Repeat("A", 64) + `"}]}]}`,
		`{"upsert":{"tenants":[{"slug":"a"}]},"delete":{"clients":["cl_x"],"apikeys":["ak_y"],"tenants":["b"]}}`,
		`{}`, `null`, `{"tenants":null}`, `{} }`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, replace bool) {
		var s Snapshot
		if DecodeStrict(data, &s) == nil {
			if c, err := s.Changes(replace); err == nil {
				checkChanges(t, c)
			} else if ErrorCode(err) != EInvalid {
				t.Fatalf("Changes error code %q", ErrorCode(err))
			}
		}
		var b ChangeBatch
		if DecodeStrict(data, &b) == nil {
			if c, err := b.Changes(); err == nil {
				checkChanges(t, c)
			}
		}
	})
}

// checkChanges fails unless c holds only valid records.
func checkChanges(t *testing.T, c *Changes) {
	t.Helper()
	for _, x := range c.Tenants {
		if !ValidSlug(x.Slug) {
			t.Fatalf("tenant %q accepted", x.Slug)
		}
	}
	for _, x := range c.DeleteTenants {
		if !ValidSlug(x) {
			t.Fatalf("delete tenant %q accepted", x)
		}
	}
	for _, x := range c.Clients {
		if ValidateID(ClientPrefix, x.ID, "") != nil || !ValidSlug(x.Tenant) {
			t.Fatalf("client %q of %q accepted", x.ID, x.Tenant)
		}
		if c.Replace && !hasTenant(c.Tenants, x.Tenant) {
			t.Fatalf("client of tenant %q not in the snapshot", x.Tenant)
		}
	}
	for _, id := range append(append([]string{}, c.DeleteClients...), c.ReplaceKeysOf...) {
		if ValidateID(ClientPrefix, id, "") != nil {
			t.Fatalf("client ID %q accepted", id)
		}
	}
	sums := map[string]bool{}
	for _, k := range c.APIKeys {
		if ValidateID(APIKeyPrefix, k.ID, "") != nil || ValidateID(ClientPrefix, k.ClientID, "") != nil {
			t.Fatalf("key %q of %q accepted", k.ID, k.ClientID)
		}
		if k.Key != "" || !hexRE.MatchString(k.KeySHA256) || sums[k.KeySHA256] {
			t.Fatalf("key %q: plaintext %q, digest %q (duplicate %v)", k.ID, k.Key, k.KeySHA256, sums[k.KeySHA256])
		}
		sums[k.KeySHA256] = true
	}
	for _, id := range c.DeleteAPIKeys {
		if ValidateID(APIKeyPrefix, id, "") != nil {
			t.Fatalf("key ID %q accepted", id)
		}
	}
}

func hasTenant(ts []Tenant, slug string) bool {
	for _, t := range ts {
		if t.Slug == slug {
			return true
		}
	}
	return false
}
