package credentials

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The digests of {"hello": "world"} that RFC 9530 (Appendix B) and
// RFC 9421 (B.2) print.
const (
	rfc9530Body   = `{"hello": "world"}`
	rfc9530SHA256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
	rfc9530SHA512 = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)

func TestContentDigestRFC9530(t *testing.T) {
	body := []byte(rfc9530Body)
	// The published values are what the hashes give.
	s256, s512 := sha256.Sum256(body), sha512.Sum512(body)
	if "sha-256=:"+base64.StdEncoding.EncodeToString(s256[:])+":" != rfc9530SHA256 ||
		"sha-512=:"+base64.StdEncoding.EncodeToString(s512[:])+":" != rfc9530SHA512 {
		t.Fatal("the RFC's digests are not the hashes of its body")
	}
	if got := ContentDigestSHA256(body); got != rfc9530SHA256 {
		t.Errorf("ContentDigestSHA256 = %s", got)
	}
	ok := []string{
		rfc9530SHA256,
		rfc9530SHA512,
		rfc9530SHA256 + ", " + rfc9530SHA512,
		rfc9530SHA512 + ",\t" + rfc9530SHA256,
		"  " + rfc9530SHA256 + "  ",
		rfc9530SHA256 + ", md5=:CY9rzUYh03PK3k6DJie09g==:", // unknown algorithms are ignored
		"unixsum=:AAAA:, " + rfc9530SHA512 + ", id-sha-256=?1, adler=(1 2)", // whatever their type
		rfc9530SHA256 + ";param=1", // parameters are ignored
		rfc9530SHA256 + "; " + strings.Replace(rfc9530SHA512, "WZ", "WY", 1), // even one named like an algorithm
		strings.TrimSuffix(rfc9530SHA256, "=:") + ":",                        // padding may be omitted (RFC 8941)
	}
	for _, f := range ok {
		if err := CheckContentDigest(f, body); err != nil {
			t.Errorf("CheckContentDigest(%q): %v", f, err)
		}
	}
	if err := CheckContentDigest("sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", nil); err != nil {
		t.Errorf("empty body: %v", err)
	}

	wrongSHA256 := "sha-256=:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ":"
	cases := []struct {
		field string
		body  []byte
		want  error
		says  string
	}{
		{rfc9530SHA256, []byte(`{"hello": "world!"}`), ErrContentDigestMismatch, "sha-256"},
		{rfc9530SHA512, []byte(`{"hello":"world"}`), ErrContentDigestMismatch, "sha-512"},
		{rfc9530SHA256, nil, ErrContentDigestMismatch, "sha-256"},
		{rfc9530SHA256, body[:len(body)-1], ErrContentDigestMismatch, "sha-256"},
		{rfc9530SHA256 + ", " + strings.Replace(rfc9530SHA512, "WZ", "WY", 1), body, ErrContentDigestMismatch, "sha-512"},
		{wrongSHA256 + ", " + rfc9530SHA512, body, ErrContentDigestMismatch, "sha-256"},
		{"sha-256=:" + base64.StdEncoding.EncodeToString(s256[:16]) + ":", body, ErrContentDigestMismatch, "sha-256"},
		{"sha-256=:" + base64.StdEncoding.EncodeToString(s512[:]) + ":", body, ErrContentDigestMismatch, "sha-256"},
		{"sha-256=::", body, ErrContentDigestMismatch, "sha-256"},
		{"md5=:CY9rzUYh03PK3k6DJie09g==:", body, ErrContentDigestUnsupported, "sha-256 or sha-512"},
		{"SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", body, ErrContentDigestMalformed, "malformed"},
		{"sha256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", body, ErrContentDigestUnsupported, ""},
		{"", body, ErrContentDigestUnsupported, ""},
		{"sha-256", body, ErrContentDigestMalformed, "sha-256"},
		{`sha-256="X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="`, body, ErrContentDigestMalformed, "sha-256"},
		{"sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", body, ErrContentDigestMalformed, ""},
		{"sha-256=(:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:)", body, ErrContentDigestMalformed, "sha-256"},
		{"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", body, ErrContentDigestMalformed, ""},
		{rfc9530SHA256 + ",", body, ErrContentDigestMalformed, ""},
		{"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:X", body, ErrContentDigestMalformed, ""},
		// The same algorithm twice is refused (RFC 8941 would keep the last).
		{wrongSHA256 + ", " + rfc9530SHA256, body, ErrContentDigestMalformed, "duplicate"},
		{rfc9530SHA256 + ", " + rfc9530SHA256, body, ErrContentDigestMalformed, "duplicate"},
		{"sha-512=:" + strings.Repeat("A", MaxContentDigestLen) + ":", body, ErrContentDigestMalformed, "longer"},
	}
	for _, c := range cases {
		err := CheckContentDigest(c.field, c.body)
		if !errors.Is(err, c.want) {
			t.Errorf("CheckContentDigest(%.50q) = %v, want %v", c.field, err, c.want)
			continue
		}
		if c.says != "" && !strings.Contains(err.Error(), c.says) {
			t.Errorf("CheckContentDigest(%.50q) = %v, should say %q", c.field, err, c.says)
		}
		if len(err.Error()) > 160 {
			t.Errorf("CheckContentDigest(%.50q): long error %q", c.field, err)
		}
	}
	// Every one-byte change of the body is caught.
	for i := range body {
		b := bytes.Clone(body)
		b[i] ^= 0x20
		if CheckContentDigest(rfc9530SHA256+", "+rfc9530SHA512, b) == nil {
			t.Fatalf("body byte %d changed: accepted", i)
		}
	}
}
