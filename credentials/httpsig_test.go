package credentials

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vectors of RFC 9421 Appendix B. Values that the RFC prints
// wrapped (RFC 8792) are joined here. The RSA-PSS, ECDSA and Ed25519
// signatures of B.2.1-B.2.3, B.2.6, B.3 and B.4 are verified with the
// RFC's public keys (B.1): a signature only verifies over the exact
// bytes the RFC signed, so each one proves its signature base.

// rfc9421Secret is test-shared-secret of RFC 9421 B.1.5.
const rfc9421Secret = "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="

// RFC 9421 B.1.2, B.1.3, B.1.4: the public test keys.
const (
	rfc9421KeyRSAPSS = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
2wIDAQAB
-----END PUBLIC KEY-----`
	rfc9421KeyP256 = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----`
	rfc9421KeyEd25519 = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`
)

// rfc9421ContentDigest is the Content-Digest of the B.2 test request: the
// SHA-512 of {"hello": "world"}.
const rfc9421ContentDigest = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"

// sigHeaders returns an HTTPMessage.Header over h (keys lower-case).
func sigHeaders(h map[string][]string) func(string) []string {
	return func(name string) []string { return h[name] }
}

// rfc9421Request is test-request of RFC 9421 B.2:
//
//	POST /foo?param=Value&Pet=dog HTTP/1.1
//	Host: example.com
//	Date: Tue, 20 Apr 2021 02:07:55 GMT
//	Content-Type: application/json
//	Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:
//	Content-Length: 18
//
//	{"hello": "world"}
func rfc9421Request() *HTTPMessage {
	return &HTTPMessage{
		Method:    "POST",
		Authority: "example.com",
		Path:      "/foo?param=Value&Pet=dog",
		Scheme:    "https",
		Header: sigHeaders(map[string][]string{
			"date":           {"Tue, 20 Apr 2021 02:07:55 GMT"},
			"content-type":   {"application/json"},
			"content-digest": {rfc9421ContentDigest},
			"content-length": {"18"},
		}),
	}
}

func sigStdB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sigPEMKey(t testing.TB, s string) crypto.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		t.Fatal("bad PEM")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sigParseOne parses a Signature-Input holding one signature.
func sigParseOne(t testing.TB, input string) SigParams {
	t.Helper()
	ps, err := ParseSignatureInput(input)
	if err != nil {
		t.Fatalf("ParseSignatureInput(%q): %v", input, err)
	}
	if len(ps) != 1 {
		t.Fatalf("ParseSignatureInput(%q): %d signatures", input, len(ps))
	}
	return ps[0]
}

func TestSignatureBaseRFC9421B25(t *testing.T) {
	const (
		input = `sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`
		sigF  = `sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:`
		want  = `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@authority": example.com
"content-type": application/json
"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`
	)
	secret := sigStdB64(t, rfc9421Secret)
	p := sigParseOne(t, input)
	if p.Label != "sig-b25" || !p.HasCreated || p.Created != 1618884473 || p.KeyID != "test-shared-secret" || p.Alg != "" || p.HasNonce || p.HasExpires {
		t.Fatalf("params = %+v", p)
	}
	if !p.Covers("date") || !p.Covers("@authority") || p.Covers("@method") {
		t.Errorf("Covers wrong for %v", p.Components)
	}
	base, err := SignatureBase(rfc9421Request(), &p)
	if err != nil {
		t.Fatal(err)
	}
	if string(base) != want {
		t.Fatalf("signature base:\n%s\nwant:\n%s", base, want)
	}
	sigs, err := ParseSignatures(sigF)
	if err != nil {
		t.Fatal(err)
	}
	sig := sigs["sig-b25"]
	if !VerifyHMACSHA256(secret, base, sig) {
		t.Fatal("the RFC's signature does not verify")
	}
	// Signing gives the RFC's signature (HMAC is deterministic).
	mac := hmac.New(sha256.New, secret)
	mac.Write(base)
	if got := base64.StdEncoding.EncodeToString(mac.Sum(nil)); "sig-b25=:"+got+":" != sigF {
		t.Errorf("HMAC = %s", got)
	}

	// A one-byte change to any covered component, or to the signature
	// parameters, or to the signature, fails.
	type change struct {
		name  string
		msg   func(m *HTTPMessage)
		input string
	}
	setHeader := func(name, v string) func(m *HTTPMessage) {
		return func(m *HTTPMessage) {
			h := m.Header
			m.Header = func(n string) []string {
				if n == name {
					return []string{v}
				}
				return h(n)
			}
		}
	}
	changes := []change{
		{name: "date", msg: setHeader("date", "Tue, 20 Apr 2021 02:07:56 GMT")},
		{name: "date removed", msg: setHeader("date", "")},
		{name: "@authority", msg: func(m *HTTPMessage) { m.Authority = "example.org" }},
		{name: "@authority port", msg: func(m *HTTPMessage) { m.Authority = "example.com:8443" }},
		{name: "content-type", msg: setHeader("content-type", "application/jsoN")},
		{name: "created", input: strings.Replace(input, "1618884473", "1618884474", 1)},
		{name: "keyid", input: strings.Replace(input, "test-shared-secret", "test-shared-secreT", 1)},
		{name: "order", input: strings.Replace(input, `"date" "@authority"`, `"@authority" "date"`, 1)},
		{name: "alg added", input: input + `;alg="hmac-sha256"`},
		{name: "nonce added", input: input + `;nonce="x"`},
	}
	for _, c := range changes {
		m := rfc9421Request()
		if c.msg != nil {
			c.msg(m)
		}
		pp := p
		if c.input != "" {
			pp = sigParseOne(t, c.input)
		}
		b, err := SignatureBase(m, &pp)
		if err != nil {
			continue // an absent covered field: no base, no verification
		}
		if VerifyHMACSHA256(secret, b, sig) {
			t.Errorf("%s changed: still verifies", c.name)
		}
	}
	for i := range sig {
		for _, bit := range []byte{1, 0x80} {
			bad := bytes.Clone(sig)
			bad[i] ^= bit
			if VerifyHMACSHA256(secret, base, bad) {
				t.Fatalf("signature byte %d changed: still verifies", i)
			}
		}
	}
	if VerifyHMACSHA256(secret, base, sig[:31]) || VerifyHMACSHA256(secret, base, append(bytes.Clone(sig), 0)) {
		t.Error("truncated or extended signature verifies")
	}
	if VerifyHMACSHA256(secret[1:], base, sig) {
		t.Error("another secret verifies")
	}
	// Components the signature does not cover can change.
	m := rfc9421Request()
	m.Method, m.Path = "DELETE", "/other"
	if b, err := SignatureBase(m, &p); err != nil || !VerifyHMACSHA256(secret, b, sig) {
		t.Errorf("uncovered method/path changed: %v", err)
	}
}

// rfc9421Vector is one signed request of RFC 9421 Appendix B.
type rfc9421Vector struct {
	name   string
	msg    *HTTPMessage
	input  string // Signature-Input
	sig    string // Signature
	base   string // the RFC's signature base; "" when the RFC does not print it
	verify func(t *testing.T, base, sig []byte) bool
}

func rfc9421Vectors(t *testing.T) []rfc9421Vector {
	rsaPSS := func(t *testing.T, base, sig []byte) bool {
		sum := sha512.Sum512(base)
		k := sigPEMKey(t, rfc9421KeyRSAPSS).(*rsa.PublicKey)
		return rsa.VerifyPSS(k, crypto.SHA512, sum[:], sig, &rsa.PSSOptions{SaltLength: 64}) == nil
	}
	ed := func(t *testing.T, base, sig []byte) bool {
		return ed25519.Verify(sigPEMKey(t, rfc9421KeyEd25519).(ed25519.PublicKey), base, sig)
	}
	p256 := func(t *testing.T, base, sig []byte) bool {
		if len(sig) != 64 {
			return false
		}
		sum := sha256.Sum256(base)
		k := sigPEMKey(t, rfc9421KeyP256).(*ecdsa.PublicKey)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, sum[:], r, s)
	}
	hmacB15 := func(t *testing.T, base, sig []byte) bool {
		return VerifyHMACSHA256(sigStdB64(t, rfc9421Secret), base, sig)
	}
	const clientCert = ":MIIBqDCCAU6gAwIBAgIBBzAKBggqhkjOPQQDAjA6MRswGQYDVQQKD" +
		"BJMZXQncyBBdXRoZW50aWNhdGUxGzAZBgNVBAMMEkxBIEludGVybWVkaWF0ZSBDQT" +
		"AeFw0yMDAxMTQyMjU1MzNaFw0yMTAxMjMyMjU1MzNaMA0xCzAJBgNVBAMMAkJDMFk" +
		"wEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8YnXXfaUgmnMtOXU/IncWalRhebrXmck" +
		"C8vdgJ1p5Be5F/3YC8OthxM4+k1M6aEAEFcGzkJiNy6J84y7uzo9M6NyMHAwCQYDV" +
		"R0TBAIwADAfBgNVHSMEGDAWgBRm3WjLa38lbEYCuiCPct0ZaSED2DAOBgNVHQ8BAf" +
		"8EBAMCBsAwEwYDVR0lBAwwCgYIKwYBBQUHAwIwHQYDVR0RAQH/BBMwEYEPYmRjQGV" +
		"4YW1wbGUuY29tMAoGCCqGSM49BAMCA0gAMEUCIBHda/r1vaL6G3VliL4/Di6YK0Q6" +
		"bMjeSkC3dFCOOB8TAiEAx/kHSB4urmiZ0NX5r5XarmPk0wmuydBVoU4hBVZ1yhk=:"
	ttrp := &HTTPMessage{ // B.3: the request as the TLS-terminating proxy forwards it
		Method: "POST", Authority: "service.internal.example", Path: "/foo?param=Value&Pet=dog", Scheme: "https",
		Header: sigHeaders(map[string][]string{
			"date":           {"Tue, 20 Apr 2021 02:07:55 GMT"},
			"content-type":   {"application/json"},
			"content-length": {"18"},
			"client-cert":    {clientCert},
		}),
	}
	b4 := &HTTPMessage{ // B.4: the signed request
		Method: "GET", Authority: "example.org", Path: "/demo?name1=Value1&Name2=value2", Scheme: "https",
		Header: sigHeaders(map[string][]string{
			"date":   {"Fri, 15 Jul 2022 14:24:55 GMT"},
			"accept": {"application/json", "*/*"},
		}),
	}
	return []rfc9421Vector{
		{
			name:  "B.2.1 minimal rsa-pss-sha512",
			msg:   rfc9421Request(),
			input: `sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"`,
			sig: "sig-b21=:d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGxbtRxf8Udx7zFZsckzXaJMkA7ChG" +
				"52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72rgFWhzx2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6" +
				"UnCh8jYzuVG5WSb/QEVPnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==:",
			base:   `"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"`,
			verify: rsaPSS,
		},
		{
			name:  "B.2.2 selective rsa-pss-sha512",
			msg:   rfc9421Request(),
			input: `sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"`,
			sig: "sig-b22=:LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvuJyE5qH7KT8UCMkSowOB4+ECxCmT" +
				"8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SARYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd" +
				"4je2U/lankenQ99PZfB4jY3I5rSV2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==:",
			base: `"@authority": example.com
"content-digest": ` + rfc9421ContentDigest + `
"@query-param";name="Pet": dog
"@signature-params": ("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"`,
			verify: rsaPSS,
		},
		{
			name: "B.2.3 full coverage rsa-pss-sha512",
			msg:  rfc9421Request(),
			input: `sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length")` +
				`;created=1618884473;keyid="test-key-rsa-pss"`,
			sig: "sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+qRpRRU5p2voTp768ZrCUb38K0fU" +
				"xN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9" +
				"bpG6A9BmzhuzF8Eim5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:",
			base: `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@query": ?param=Value&Pet=dog
"@authority": example.com
"content-type": application/json
"content-digest": ` + rfc9421ContentDigest + `
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"`,
			verify: rsaPSS,
		},
		{
			name:  "B.2.5 hmac-sha256",
			msg:   rfc9421Request(),
			input: `sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`,
			sig:   `sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:`,
			base: `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@authority": example.com
"content-type": application/json
"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`,
			verify: hmacB15,
		},
		{
			name: "B.2.6 ed25519",
			msg:  rfc9421Request(),
			input: `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473` +
				`;keyid="test-key-ed25519"`,
			sig: "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
			base: `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`,
			verify: ed,
		},
		{
			name:   "B.3 TLS-terminating proxy ecdsa-p256-sha256",
			msg:    ttrp,
			input:  `ttrp=("@path" "@query" "@method" "@authority" "client-cert");created=1618884473;keyid="test-key-ecc-p256"`,
			sig:    "ttrp=:xVMHVpawaAC/0SbHrKRs9i8I3eOs5RtTMGCWXm/9nvZzoHsIg6Mce9315T6xoklyy0yzhD9ah4JHRwMLOgmizw==:",
			verify: p256,
		},
		{
			name:   "B.4 transformations: the signed request",
			msg:    b4,
			input:  `transform=("@method" "@path" "@authority" "accept");created=1618884473;keyid="test-key-ed25519"`,
			sig:    "transform=:ZT1kooQsEHpZ0I1IjCqtQppOmIqlJPeo7DHR3SoMn0s5JZ1eRGS0A+vyYP9t/LXlh5QMFFQ6cpLt2m0pmj3NDA==:",
			verify: ed,
		},
	}
}

func TestSignatureBaseRFC9421AppendixB(t *testing.T) {
	for _, v := range rfc9421Vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			p := sigParseOne(t, v.input)
			base, err := SignatureBase(v.msg, &p)
			if err != nil {
				t.Fatal(err)
			}
			if v.base != "" && string(base) != v.base {
				t.Fatalf("signature base:\n%s\nwant:\n%s", base, v.base)
			}
			sigs, err := ParseSignatures(v.sig)
			if err != nil {
				t.Fatal(err)
			}
			sig, ok := sigs[p.Label]
			if !ok {
				t.Fatalf("no signature %q", p.Label)
			}
			if !v.verify(t, base, sig) {
				t.Fatalf("the RFC's signature does not verify over\n%s", base)
			}
			bad := bytes.Clone(base)
			bad[len(bad)/2] ^= 1
			if v.verify(t, bad, sig) {
				t.Fatal("verifies over a changed base")
			}
		})
	}
}

// TestSignatureBaseRFC9421B4 is RFC 9421 B.4: transformations that keep
// the signature valid, and two that break it.
func TestSignatureBaseRFC9421B4(t *testing.T) {
	var v rfc9421Vector
	for _, x := range rfc9421Vectors(t) {
		if strings.HasPrefix(x.name, "B.4") {
			v = x
		}
	}
	p := sigParseOne(t, v.input)
	sigs, err := ParseSignatures(v.sig)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(method, authority, path string, h map[string][]string) *HTTPMessage {
		return &HTTPMessage{Method: method, Authority: authority, Path: path, Scheme: "https", Header: sigHeaders(h)}
	}
	cases := []struct {
		name string
		m    *HTTPMessage
		ok   bool
	}{
		{"query parameter added, Accept-Language added", msg("GET", "example.org", "/demo?name1=Value1&Name2=value2&param=added",
			map[string][]string{"date": {"Fri, 15 Jul 2022 14:24:55 GMT"}, "accept": {"application/json", "*/*"}, "accept-language": {"en-US,en;q=0.5"}}), true},
		{"Date removed, Referer added, Accept lines combined", msg("GET", "example.org", "/demo?name1=Value1&Name2=value2",
			map[string][]string{"referer": {"https://developer.example.org/demo"}, "accept": {"application/json, */*"}}), true},
		{"fields reordered", msg("GET", "example.org", "/demo?name1=Value1&Name2=value2",
			map[string][]string{"accept": {"application/json", "*/*"}, "date": {"Fri, 15 Jul 2022 14:24:55 GMT"}}), true},
		{"method changed", msg("POST", "example.com", "/demo?name1=Value1&Name2=value2",
			map[string][]string{"date": {"Fri, 15 Jul 2022 14:24:55 GMT"}, "accept": {"application/json", "*/*"}}), false},
		{"Accept values reordered", msg("GET", "example.org", "/demo?name1=Value1&Name2=value2",
			map[string][]string{"date": {"Fri, 15 Jul 2022 14:24:55 GMT"}, "accept": {"*/*", "application/json"}}), false},
	}
	for _, c := range cases {
		base, err := SignatureBase(c.m, &p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := v.verify(t, base, sigs["transform"]); got != c.ok {
			t.Errorf("%s: verifies = %v, want %v", c.name, got, c.ok)
		}
	}
}

// TestDerivedComponentsRFC9421 is the examples of RFC 9421 §2.2, one
// signature base line each, plus the §2.2.3 normalization of the
// authority.
func TestDerivedComponentsRFC9421(t *testing.T) {
	req := func(method, scheme, authority, path string) *HTTPMessage {
		return &HTTPMessage{Method: method, Scheme: scheme, Authority: authority, Path: path}
	}
	cases := []struct {
		m    *HTTPMessage
		comp string // the Signature-Input component identifier
		want string // the signature base line
	}{
		// §2.2.1
		{req("POST", "https", "www.example.com", "/path?param=value"), `"@method"`, `"@method": POST`},
		{req("get", "https", "www.example.com", "/"), `"@method"`, `"@method": get`},
		// §2.2.2
		{req("POST", "https", "www.example.com", "/path?param=value"), `"@target-uri"`, `"@target-uri": https://www.example.com/path?param=value`},
		{req("GET", "HTTP", "WWW.Example.com:80", "/a%2Fb"), `"@target-uri"`, `"@target-uri": http://www.example.com/a%2Fb`},
		{req("OPTIONS", "https", "www.example.com", "*"), `"@target-uri"`, `"@target-uri": https://www.example.com`},
		// §2.2.3
		{req("POST", "https", "www.example.com", "/path?param=value"), `"@authority"`, `"@authority": www.example.com`},
		{req("GET", "https", "WWW.Example.COM:443", "/"), `"@authority"`, `"@authority": www.example.com`},
		{req("GET", "http", "www.example.com:80", "/"), `"@authority"`, `"@authority": www.example.com`},
		{req("GET", "http", "www.example.com:443", "/"), `"@authority"`, `"@authority": www.example.com:443`},
		{req("GET", "https", "www.example.com:8443", "/"), `"@authority"`, `"@authority": www.example.com:8443`},
		{req("GET", "", "www.example.com:443", "/"), `"@authority"`, `"@authority": www.example.com:443`},
		{req("GET", "https", "[2001:DB8::1]:443", "/"), `"@authority"`, `"@authority": [2001:db8::1]`},
		{req("GET", "https", "[2001:db8::1]", "/"), `"@authority"`, `"@authority": [2001:db8::1]`},
		{req("GET", "https", "[2001:db8::1]:9443", "/"), `"@authority"`, `"@authority": [2001:db8::1]:9443`},
		// §2.2.4
		{req("POST", "http", "www.example.com", "/path?param=value"), `"@scheme"`, `"@scheme": http`},
		{req("POST", "HTTPS", "www.example.com", "/path?param=value"), `"@scheme"`, `"@scheme": https`},
		// §2.2.5 (origin-form and asterisk-form: what ":path" can hold)
		{req("POST", "https", "www.example.com", "/path?param=value"), `"@request-target"`, `"@request-target": /path?param=value`},
		{req("OPTIONS", "https", "www.example.com", "*"), `"@request-target"`, `"@request-target": *`},
		// §2.2.6
		{req("POST", "https", "www.example.com", "/path?param=value"), `"@path"`, `"@path": /path`},
		{req("GET", "https", "www.example.com", "/a%2Fb/c?x"), `"@path"`, `"@path": /a%2Fb/c`},
		{req("GET", "https", "www.example.com", "?x=1"), `"@path"`, `"@path": /`},
		// §2.2.7
		{req("POST", "https", "www.example.com", "/path?param=value&foo=bar&baz=bat%2Dman"), `"@query"`, `"@query": ?param=value&foo=bar&baz=bat%2Dman`},
		{req("POST", "https", "www.example.com", "/path?queryString"), `"@query"`, `"@query": ?queryString`},
		{req("GET", "https", "www.example.com", "/path"), `"@query"`, `"@query": ?`},
		{req("GET", "https", "www.example.com", "/path?"), `"@query"`, `"@query": ?`},
		// §2.2.8
		{req("GET", "https", "www.example.com", "/path?param=value&foo=bar&baz=batman&qux="), `"@query-param";name="baz"`, `"@query-param";name="baz": batman`},
		{req("GET", "https", "www.example.com", "/path?param=value&foo=bar&baz=batman&qux="), `"@query-param";name="qux"`, `"@query-param";name="qux": `},
		{req("GET", "https", "www.example.com", "/path?param=value&foo=bar&baz=batman&qux="), `"@query-param";name="param"`, `"@query-param";name="param": value`},
		{req("GET", "https", "www.example.com", rfc9421ParametersPath), `"@query-param";name="var"`, `"@query-param";name="var": this%20is%20a%20big%0Amultiline%20value`},
		{req("GET", "https", "www.example.com", rfc9421ParametersPath), `"@query-param";name="bar"`, `"@query-param";name="bar": with%20plus%20whitespace`},
		{req("GET", "https", "www.example.com", rfc9421ParametersPath), `"@query-param";name="fa%C3%A7ade%22%3A%20"`, `"@query-param";name="fa%C3%A7ade%22%3A%20": something`},
		// form decoding details (WHATWG URL §5.1, §5.2)
		{req("GET", "https", "h", "/?a=%7e%2a%2D%2e%5F&b"), `"@query-param";name="a"`, `"@query-param";name="a": %7E*-._`},
		{req("GET", "https", "h", "/?a&b"), `"@query-param";name="b"`, `"@query-param";name="b": `},
		{req("GET", "https", "h", "/?&&a=1&&"), `"@query-param";name="a"`, `"@query-param";name="a": 1`},
		{req("GET", "https", "h", "/?a=%zz%4"), `"@query-param";name="a"`, `"@query-param";name="a": %25zz%254`},
		{req("GET", "https", "h", "/?a=1=2;b"), `"@query-param";name="a"`, `"@query-param";name="a": 1%3D2%3Bb`},
		{req("GET", "https", "h", "/?%61=x"), `"@query-param";name="a"`, `"@query-param";name="a": x`},
		{req("GET", "https", "h", "/?a+b=%2B"), `"@query-param";name="a%20b"`, `"@query-param";name="a%20b": %2B`},
		{req("GET", "https", "h", "/?=empty"), `"@query-param";name=""`, `"@query-param";name="": empty`},
		{req("GET", "https", "h", "/?e=%E2%82%AC%F0%9F%98%80"), `"@query-param";name="e"`, `"@query-param";name="e": %E2%82%AC%F0%9F%98%80`},
		{req("GET", "https", "h", "/?e=\xe2\x82\xac"), `"@query-param";name="e"`, `"@query-param";name="e": %E2%82%AC`},
	}
	for _, c := range cases {
		p := sigParseOne(t, "s=("+c.comp+")")
		base, err := SignatureBase(c.m, &p)
		if err != nil {
			t.Errorf("%s of %+v: %v", c.comp, *c.m, err)
			continue
		}
		line, _, _ := strings.Cut(string(base), "\n")
		if line != c.want {
			t.Errorf("%s of %s %s: got\n%s\nwant\n%s", c.comp, c.m.Authority, c.m.Path, line, c.want)
		}
	}
}

// rfc9421ParametersPath is the request target of the second RFC 9421 §2.2.8
// example.
const rfc9421ParametersPath = "/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something"

// TestHeaderFieldsRFC9421 is the §2.1 examples: values trimmed, several
// field lines joined with ", ", an empty field kept.
func TestHeaderFieldsRFC9421(t *testing.T) {
	m := &HTTPMessage{Method: "GET", Authority: "www.example.com", Path: "/xyz", Header: sigHeaders(map[string][]string{
		"x-ows-header":   {"   Leading and trailing whitespace.   "},
		"x-empty-header": {""},
		"cache-control":  {"max-age=60", "   must-revalidate"},
		"example-dict":   {" a=1,    b=2;x=1;y=2,   c=(a   b   c)", "d"},
		"example-header": {"value, with, lots", "of, commas"},
		"tabs":           {"\tx\t"},
	})}
	want := map[string]string{
		"x-ows-header":   `"x-ows-header": Leading and trailing whitespace.`,
		"x-empty-header": `"x-empty-header": `,
		"cache-control":  `"cache-control": max-age=60, must-revalidate`,
		"example-dict":   `"example-dict": a=1,    b=2;x=1;y=2,   c=(a   b   c), d`,
		"example-header": `"example-header": value, with, lots, of, commas`,
		"tabs":           `"tabs": x`,
	}
	for name, line := range want {
		p := SigParams{Components: []SigComponent{{Name: name}}}
		base, err := SignatureBase(m, &p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, _, _ := strings.Cut(string(base), "\n"); got != line {
			t.Errorf("%s: got %q, want %q", name, got, line)
		}
	}
}

func TestSignatureBaseErrors(t *testing.T) {
	m := rfc9421Request()
	cases := []struct {
		name  string
		m     func(m *HTTPMessage)
		comps []SigComponent
	}{
		{"absent field", nil, []SigComponent{{Name: "x-missing"}}},
		{"nil Header", func(m *HTTPMessage) { m.Header = nil }, []SigComponent{{Name: "date"}}},
		{"twice", nil, []SigComponent{{Name: "date"}, {Name: "@method"}, {Name: "date"}}},
		{"query-param twice", nil, []SigComponent{{Name: "@query-param", Param: "Pet"}, {Name: "@query-param", Param: "Pet"}}},
		{"query-param absent", nil, []SigComponent{{Name: "@query-param", Param: "pet"}}},
		{"query-param repeated", func(m *HTTPMessage) { m.Path = "/?a=1&b=2&a=1" }, []SigComponent{{Name: "@query-param", Param: "a"}}},
		{"query-param repeated encoded", func(m *HTTPMessage) { m.Path = "/?a=1&%61=1" }, []SigComponent{{Name: "@query-param", Param: "a"}}},
		{"query-param not UTF-8", func(m *HTTPMessage) { m.Path = "/?a=%FF" }, []SigComponent{{Name: "@query-param", Param: "a"}}},
		{"query-param truncated UTF-8", func(m *HTTPMessage) { m.Path = "/?a=%E2%82" }, []SigComponent{{Name: "@query-param", Param: "a"}}},
		{"no scheme", func(m *HTTPMessage) { m.Scheme = "" }, []SigComponent{{Name: "@scheme"}}},
		{"no scheme target-uri", func(m *HTTPMessage) { m.Scheme = "" }, []SigComponent{{Name: "@target-uri"}}},
		{"no authority", func(m *HTTPMessage) { m.Authority = "" }, []SigComponent{{Name: "@authority"}}},
		{"no method", func(m *HTTPMessage) { m.Method = "" }, []SigComponent{{Name: "@method"}}},
		{"no request target", func(m *HTTPMessage) { m.Path = "" }, []SigComponent{{Name: "@request-target"}}},
		{"target-uri of a non-origin path", func(m *HTTPMessage) { m.Path = "x" }, []SigComponent{{Name: "@target-uri"}}},
		{"@status", nil, []SigComponent{{Name: "@status"}}},
		{"@signature-params", nil, []SigComponent{{Name: "@signature-params"}}},
		{"unknown derived", nil, []SigComponent{{Name: "@foo"}}},
		{"upper-case field", nil, []SigComponent{{Name: "Date"}}},
		{"field with param", nil, []SigComponent{{Name: "date", Param: "x"}}},
		{"empty name", nil, []SigComponent{{Name: ""}}},
		{"bad field name", nil, []SigComponent{{Name: "a b"}}},
		{"newline in field name", nil, []SigComponent{{Name: "date\n\"@method\""}}},
		{"LF in field value", func(m *HTTPMessage) {
			m.Header = sigHeaders(map[string][]string{"date": {"x\n\"@method\": GET"}})
		}, []SigComponent{{Name: "date"}}},
		{"obs-fold in field value", func(m *HTTPMessage) {
			m.Header = sigHeaders(map[string][]string{"x-obs-fold-header": {"Obsolete\r\n    line folding."}})
		}, []SigComponent{{Name: "x-obs-fold-header"}}},
		{"NUL in field value", func(m *HTTPMessage) {
			m.Header = sigHeaders(map[string][]string{"date": {"x\x00"}})
		}, []SigComponent{{Name: "date"}}},
		{"LF in method", func(m *HTTPMessage) { m.Method = "GET\n" }, []SigComponent{{Name: "@method"}}},
		{"LF in path", func(m *HTTPMessage) { m.Path = "/a\nb" }, []SigComponent{{Name: "@path"}}},
		{"LF in authority", func(m *HTTPMessage) { m.Authority = "a\nb" }, []SigComponent{{Name: "@authority"}}},
		{"too many", nil, make([]SigComponent, MaxSignatureComponents+1)},
	}
	for _, c := range cases {
		mm := *m
		if c.m != nil {
			c.m(&mm)
		}
		p := SigParams{Components: c.comps, Created: 1, HasCreated: true}
		if b, err := SignatureBase(&mm, &p); err == nil {
			t.Errorf("%s: no error, base\n%s", c.name, b)
		}
	}
	// A nonce or key ID that cannot be serialized.
	p := SigParams{KeyID: "k\n"}
	if _, err := SignatureBase(m, &p); err == nil {
		t.Error("key ID with a newline: no error")
	}
}

// TestSignatureParamsBuilt checks the serialization of SigParams built
// by hand against what ParseSignatureInput gives.
func TestSignatureParamsBuilt(t *testing.T) {
	p := SigParams{
		Components: []SigComponent{{Name: "@method"}, {Name: "@query-param", Param: `a"b\c`}, {Name: "content-digest"}},
		Created:    1618884473, HasCreated: true, Expires: 1618884773, HasExpires: true,
		KeyID: "hk_1", Alg: "hmac-sha256", Nonce: "", HasNonce: true, Tag: "t",
	}
	sp, err := p.signatureParams()
	if err != nil {
		t.Fatal(err)
	}
	const want = `("@method" "@query-param";name="a\"b\\c" "content-digest");created=1618884473;expires=1618884773;keyid="hk_1";alg="hmac-sha256";nonce="";tag="t"`
	if sp != want {
		t.Fatalf("got  %s\nwant %s", sp, want)
	}
	q := sigParseOne(t, "x="+sp)
	q.raw, q.Label = "", ""
	if fmt.Sprint(q) != fmt.Sprint(p) {
		t.Errorf("reparsed %+v\nwant %+v", q, p)
	}
}

func TestParseSignatureInput(t *testing.T) {
	valid := []struct {
		in   string
		want []SigParams
	}{
		{`sig1=("@method" "@authority" "@path" "content-digest");created=1700000000;keyid="hk_abc";alg="hmac-sha256";nonce="n-1"`,
			[]SigParams{{Label: "sig1", Components: []SigComponent{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}, {Name: "content-digest"}},
				Created: 1700000000, HasCreated: true, KeyID: "hk_abc", Alg: "hmac-sha256", Nonce: "n-1", HasNonce: true,
				raw: `("@method" "@authority" "@path" "content-digest");created=1700000000;keyid="hk_abc";alg="hmac-sha256";nonce="n-1"`}}},
		// whitespace: OWS around commas, SP inside the inner list, SP after ";"
		{"  a=(  \"@method\"   \"date\" );created=1;  keyid=\"k\"\t,\tb=();expires=2  ",
			[]SigParams{
				{Label: "a", Components: []SigComponent{{Name: "@method"}, {Name: "date"}}, Created: 1, HasCreated: true, KeyID: "k",
					raw: `("@method" "date");created=1;keyid="k"`},
				{Label: "b", Components: []SigComponent{}, Expires: 2, HasExpires: true, raw: `();expires=2`},
			}},
		// unknown parameters are kept in @signature-params and ignored
		{`s=();created=5;x-custom=?1;weight=0.50;blob=:AAE=:;tok=abc/def;flag`,
			[]SigParams{{Label: "s", Components: []SigComponent{}, Created: 5, HasCreated: true,
				raw: `();created=5;x-custom;weight=0.5;blob=:AAE=:;tok=abc/def;flag`}}},
		// escapes in strings, an empty nonce
		{`s=("@query-param";name="a\\b");nonce="";keyid="\"q\""`,
			[]SigParams{{Label: "s", Components: []SigComponent{{Name: "@query-param", Param: `a\b`}}, Nonce: "", HasNonce: true, KeyID: `"q"`,
				raw: `("@query-param";name="a\\b");nonce="";keyid="\"q\""`}}},
		{`s=();created=0`, []SigParams{{Label: "s", Components: []SigComponent{}, HasCreated: true, raw: `();created=0`}}},
		{`s=();created=0042`, []SigParams{{Label: "s", Components: []SigComponent{}, Created: 42, HasCreated: true, raw: `();created=42`}}},
	}
	for _, c := range valid {
		got, err := ParseSignatureInput(c.in)
		if err != nil {
			t.Errorf("ParseSignatureInput(%q): %v", c.in, err)
			continue
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c.want) {
			t.Errorf("ParseSignatureInput(%q) =\n%+v\nwant\n%+v", c.in, got, c.want)
		}
	}
	many := func(n int, f func(i int) string) string {
		var parts []string
		for i := range n {
			parts = append(parts, f(i))
		}
		return strings.Join(parts, ", ")
	}
	invalid := []string{
		``,
		`   `,
		`sig1`,
		`sig1=`,
		`sig1="@method"`,
		`sig1=:AAAA:`,
		`sig1=("@method"`,
		`sig1=("@method" "date",)`,
		`sig1=("@method","date")`,
		"sig1=(\"@method\"\t\"date\")",
		`sig1=(@method)`,
		`sig1=(method)`,
		`sig1=(1)`,
		`sig1=(("@method"))`,
		`sig1=("@method"), sig1=("@path")`,
		`sig1=();created=1;created=2`,
		`sig1=();created="1"`,
		`sig1=();created=1.5`,
		`sig1=();created=-1`,
		`sig1=();expires=-1`,
		`sig1=();keyid=abc`,
		`sig1=();keyid=:YWJj:`,
		`sig1=();alg=hmac-sha256`,
		`sig1=();nonce=?1`,
		`sig1=();tag=1`,
		`sig1=();created=1234567890123456`,
		`sig1=("Date")`,
		`sig1=("date";sf)`,
		`sig1=("date";key="a")`,
		`sig1=("date";bs)`,
		`sig1=("@method";req)`,
		`sig1=("date";tr)`,
		`sig1=("date";x=1)`,
		`sig1=("@query-param")`,
		`sig1=("@query-param";name=x)`,
		`sig1=("@query-param";name="a";name="b")`,
		`sig1=("@query-param";name="a";sf)`,
		`sig1=("@status")`,
		// RFC 9421 B.2.4 signs a response: @status is refused on requests.
		`sig-b24=("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`,
		`sig1=("@request-response";key="sig1")`,
		`sig1=("@signature-params")`,
		`sig1=("@method" "@method")`,
		`sig1=("")`,
		`sig1=("a b")`,
		`sig1=("d\"e")`,
		`sig1=();created=1,`,
		`sig1=();created=1,,sig2=()`,
		`sig1=() ;created=1`,
		`sig1=();created =1`,
		`sig1=();created= 1`,
		`Sig1=()`,
		`1sig=()`,
		`sig1=() x`,
		"sig1=(\"d\u00e9\")",
		"sig1=();keyid=\"\u00e9\"",
		"sig1=();keyid=\"a\x00\"",
		`sig1=();keyid="a\b"`,
		`sig1=();keyid="abc`,
		many(MaxSignatures+1, func(i int) string { return fmt.Sprintf("s%d=()", i) }),
		"s=(" + strings.Repeat(`"a" `, MaxSignatureComponents+1) + ")",
		"s=(" + many(MaxSignatureComponents+1, func(i int) string { return fmt.Sprintf(`"h%d"`, i) }) + ")",
		"s=()" + strings.Repeat(";a", 2) + strings.Repeat("x", MaxSignatureFieldLen),
	}
	for _, in := range invalid {
		if got, err := ParseSignatureInput(in); err == nil {
			t.Errorf("ParseSignatureInput(%.60q) = %+v, want an error", in, got)
		} else if len(err.Error()) > 160 {
			t.Errorf("ParseSignatureInput(%.60q): error too long: %v", in, err)
		}
	}
	// Limits are inclusive.
	at := many(MaxSignatures, func(i int) string {
		return fmt.Sprintf("s%d=(%s)", i, strings.Repeat(`"@method" `, 1))
	})
	if ps, err := ParseSignatureInput(at); err != nil || len(ps) != MaxSignatures {
		t.Errorf("%d signatures: %v", MaxSignatures, err)
	}
	comps := "s=(" + strings.Join(func() (s []string) {
		for i := range MaxSignatureComponents {
			s = append(s, fmt.Sprintf(`"h%d"`, i))
		}
		return s
	}(), " ") + ")"
	if ps, err := ParseSignatureInput(comps); err != nil || len(ps[0].Components) != MaxSignatureComponents {
		t.Errorf("%d components: %v", MaxSignatureComponents, err)
	}
	// Errors never quote a long value.
	long := "sig=(\"" + strings.Repeat("x", 200) + "\";sf)"
	if _, err := ParseSignatureInput(long); err == nil || strings.Contains(err.Error(), strings.Repeat("x", 50)) {
		t.Errorf("error quotes the value: %v", err)
	}
	secretish := `sig1=();keyid="` + strings.Repeat("s", 60) + `";keyid="x"`
	if _, err := ParseSignatureInput(secretish); err == nil || strings.Contains(err.Error(), "sss") {
		t.Errorf("error quotes a parameter: %v", err)
	}
}

func TestParseSignatures(t *testing.T) {
	got, err := ParseSignatures("sig1=:AAECAw==:,  sig2=:/w==:")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got["sig1"], []byte{0, 1, 2, 3}) || !bytes.Equal(got["sig2"], []byte{0xff}) || len(got) != 2 {
		t.Errorf("got %v", got)
	}
	invalid := []string{
		``,
		`sig1`,
		`sig1=::`,
		`sig1=:AAECAw:`,   // no padding: not canonical
		`sig1=:AAECAx==:`, // non-zero pad bits
		`sig1=:AAECAw=:`,
		`sig1=:AA==AA==:`,
		`sig1=:AAE*:`,
		`sig1=:_-8=:`,
		`sig1=:AAECAw==`,
		`sig1="AAECAw=="`,
		`sig1=(:AAECAw==:)`,
		`sig1=:AAECAw==:;x=1`,
		`sig1=:AAECAw==:, sig1=:AAECAw==:`,
		`sig1=:AAECAw==: sig2=:AAECAw==:`,
		"sig1=:AAEC\nAw==:",
		`sig1=:` + strings.Repeat("A", MaxSignatureFieldLen) + `:`,
	}
	for _, in := range invalid {
		if got, err := ParseSignatures(in); err == nil {
			t.Errorf("ParseSignatures(%.60q) = %v, want an error", in, got)
		}
	}
}

func TestSignRFC9421(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	created := time.Unix(1700000000, 0)
	for _, c := range []struct {
		name, path string
		body       []byte
		nonce      string
		input      string
	}{
		{"GET", "/v1/things", nil, "",
			`sig1=("@method" "@authority" "@path");created=1700000000;keyid="hk_test";alg="hmac-sha256"`},
		{"GET with query", "/v1/things?id=7&x=%20", nil, "n0nce",
			`sig1=("@method" "@authority" "@path" "@query");created=1700000000;keyid="hk_test";alg="hmac-sha256";nonce="n0nce"`},
		{"POST with body", "/v1/things?", []byte(`{"hello": "world"}`), "",
			`sig1=("@method" "@authority" "@path" "@query" "content-digest");created=1700000000;keyid="hk_test";alg="hmac-sha256"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &HTTPMessage{Method: "POST", Authority: "API.example.com", Path: c.path, Scheme: "https",
				Header: sigHeaders(map[string][]string{"content-digest": {"sha-256=:stale:"}})}
			h, err := SignRFC9421(m, c.body, "hk_test", secret, created, c.nonce)
			if err != nil {
				t.Fatal(err)
			}
			if h["signature-input"] != c.input {
				t.Errorf("signature-input = %s\nwant              %s", h["signature-input"], c.input)
			}
			if cd, ok := h["content-digest"]; ok != (len(c.body) > 0) {
				t.Errorf("content-digest = %q", cd)
			} else if ok {
				if err := CheckContentDigest(cd, c.body); err != nil {
					t.Error(err)
				}
			}
			// Verify as keygate would: the headers as received.
			recv := &HTTPMessage{Method: m.Method, Authority: "api.example.com:443", Path: m.Path, Scheme: "https",
				Header: sigHeaders(map[string][]string{"content-digest": {h["content-digest"]}})}
			ps, err := ParseSignatureInput(h["signature-input"])
			if err != nil {
				t.Fatal(err)
			}
			sigs, err := ParseSignatures(h["signature"])
			if err != nil {
				t.Fatal(err)
			}
			p := ps[0]
			if p.Alg != AlgHMACSHA256 || p.KeyID != "hk_test" || p.Created != created.Unix() || p.HasNonce != (c.nonce != "") || p.Nonce != c.nonce {
				t.Errorf("params = %+v", p)
			}
			base, err := SignatureBase(recv, &p)
			if err != nil {
				t.Fatal(err)
			}
			if !VerifyHMACSHA256(secret, base, sigs[p.Label]) {
				t.Fatalf("does not verify over\n%s", base)
			}
			recv.Method = "PUT"
			if base, err := SignatureBase(recv, &p); err != nil || VerifyHMACSHA256(secret, base, sigs[p.Label]) {
				t.Errorf("verifies with another method (%v)", err)
			}
		})
	}
	m := &HTTPMessage{Method: "GET", Authority: "h", Path: "/"}
	for _, bad := range []struct {
		name   string
		m      *HTTPMessage
		keyID  string
		secret []byte
		nonce  string
	}{
		{"no key ID", m, "", secret, ""},
		{"key ID not ASCII", m, "h\u00e9", secret, ""},
		{"nonce with newline", m, "k", secret, "a\nb"},
		{"no secret", m, "k", nil, ""},
		{"no authority", &HTTPMessage{Method: "GET", Path: "/"}, "k", secret, ""},
	} {
		if _, err := SignRFC9421(bad.m, nil, bad.keyID, bad.secret, created, bad.nonce); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
	}
	if _, err := SignRFC9421(m, nil, "k", secret, time.Unix(-1, 0), ""); err == nil {
		t.Error("created before 1970: no error")
	}
}

// TestLegacySignPython checks LegacySign against Python's standard
// library, which legacy clients use. python3 is required.
func TestLegacySignPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not on PATH (it is required by this test): %v", err)
	}
	type vec struct {
		secret []byte
		ts     string
		body   []byte
	}
	vecs := []vec{
		{[]byte("0123456789abcdef0123456789abcdef"), "1700000000", []byte(`{"hello": "world"}`)},
		{[]byte("0123456789abcdef0123456789abcdef"), "1700000000", nil},
		{[]byte{0, 1, 2, 0xff, 0xfe}, "1", []byte("caf\u00e9 \u2603 \n\t.")},
		{bytes.Repeat([]byte("k"), 200), "999999999999", bytes.Repeat([]byte("ab."), 1000)},
	}
	var script strings.Builder
	script.WriteString("import hmac, hashlib, base64\n")
	for _, v := range vecs {
		// The body is text in the usual Python client (f"{ts}.{body}"):
		// the test bodies are UTF-8.
		fmt.Fprintf(&script, "secret = base64.b64decode('%s')\nts = '%s'\nbody = base64.b64decode('%s').decode()\n",
			base64.StdEncoding.EncodeToString(v.secret), v.ts, base64.StdEncoding.EncodeToString(v.body))
		script.WriteString("print(hmac.new(secret, f\"{ts}.{body}\".encode(), hashlib.sha256).hexdigest())\n")
	}
	out, err := exec.Command(py, "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(vecs) {
		t.Fatalf("python3 printed %q", out)
	}
	for i, v := range vecs {
		got := LegacySign(v.secret, v.ts, v.body)
		if got != lines[i] {
			t.Errorf("vector %d: LegacySign = %s, python says %s", i, got, lines[i])
		}
		if !VerifyLegacy(v.secret, v.ts, v.body, lines[i]) || !VerifyLegacy(v.secret, v.ts, v.body, strings.ToUpper(lines[i])) {
			t.Errorf("vector %d: VerifyLegacy refuses python's signature", i)
		}
	}
}

func TestVerifyLegacy(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"a":1}`)
	sig := LegacySign(secret, "1700000000", body)
	if !VerifyLegacy(secret, "1700000000", body, sig) {
		t.Fatal("own signature refused")
	}
	for _, bad := range []struct{ ts, body, sig string }{
		{"1700000001", string(body), sig},
		{"1700000000", `{"a":2}`, sig},
		{"1700000000", `{"a":1} `, sig},
		{"1700000000", "", sig},
		{"1700000000" + ".", string(body)[1:], sig}, // the "." boundary is fixed
		{"1700000000", string(body), sig[:62]},
		{"1700000000", string(body), sig + "00"},
		{"1700000000", string(body), sig[:63] + "g"},
		{"1700000000", string(body), " " + sig[1:]},
		{"1700000000", string(body), ""},
	} {
		if VerifyLegacy(secret, bad.ts, []byte(bad.body), bad.sig) {
			t.Errorf("VerifyLegacy(%q, %q, %q) = true", bad.ts, bad.body, bad.sig)
		}
	}
	flip := []byte(sig)
	flip[10] ^= 1
	if VerifyLegacy(secret, "1700000000", body, string(flip)) {
		t.Error("changed signature verifies")
	}
	// A long timestamp is signed as given (LegacyTimestamp refuses it first).
	long := strings.Repeat("9", 20)
	if !VerifyLegacy(secret, long, body, LegacySign(secret, long, body)) {
		t.Error("long timestamp")
	}
}

func TestLegacyTimestamp(t *testing.T) {
	for in, want := range map[string]int64{
		"1700000000": 1700000000, "0": 0, "1": 1, "999999999999": 999999999999,
	} {
		if got, ok := LegacyTimestamp(in); !ok || got != want {
			t.Errorf("LegacyTimestamp(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "01700000000", "00", "+1700000000", "-1700000000", "1700000000.5", "1700000000.",
		"1e9", " 1700000000", "1700000000 ", "1_700_000_000", "0x10", "1000000000000", "１７００", "17000000\x000"} {
		if got, ok := LegacyTimestamp(in); ok {
			t.Errorf("LegacyTimestamp(%q) = %d, true", in, got)
		}
	}
	if n, _ := LegacyTimestamp("999999999999"); strconv.FormatInt(n, 10) != "999999999999" {
		t.Error("12 digits")
	}
}
