package credentials

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

// benchSigned is a typical keygate request: a POST with a query and a
// JSON body, signed by SignRFC9421, as keygate receives it.
func benchSigned(b *testing.B) (m *HTTPMessage, input, sig string, secret, body []byte) {
	secret = []byte("0123456789abcdef0123456789abcdef")
	body = bytes.Repeat([]byte(`{"id":1,"name":"thing"}`), 40)
	m = &HTTPMessage{Method: "POST", Authority: "api.example.com", Path: "/v1/projects/42/items?limit=10&cursor=abc", Scheme: "https"}
	h, err := SignRFC9421(m, body, "hk_datasync1", secret, time.Unix(1700000000, 0), "3f2c0a9e5d")
	if err != nil {
		b.Fatal(err)
	}
	headers := map[string][]string{
		"content-digest": {h["content-digest"]},
		"content-type":   {"application/json"},
		"user-agent":     {"client/1.0"},
	}
	m.Header = func(name string) []string { return headers[name] }
	return m, h["signature-input"], h["signature"], secret, body
}

func BenchmarkSignatureBase(b *testing.B) {
	m, input, _, _, _ := benchSigned(b)
	ps, err := ParseSignatureInput(input)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignatureBase(m, &ps[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRFC9421 is what Check does for a signed request:
// parse Signature-Input and Signature, build the base, check the HMAC
// and the body's Content-Digest.
func BenchmarkVerifyRFC9421(b *testing.B) {
	m, input, sigField, secret, body := benchSigned(b)
	for _, bb := range []struct {
		name   string
		digest bool
	}{{"signature", false}, {"signature+content-digest", true}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ps, err := ParseSignatureInput(input)
				if err != nil {
					b.Fatal(err)
				}
				sigs, err := ParseSignatures(sigField)
				if err != nil {
					b.Fatal(err)
				}
				base, err := SignatureBase(m, &ps[0])
				if err != nil {
					b.Fatal(err)
				}
				if !VerifyHMACSHA256(secret, base, sigs[ps[0].Label]) {
					b.Fatal("does not verify")
				}
				if bb.digest {
					if err := CheckContentDigest(m.Header("content-digest")[0], body); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkContentDigest(b *testing.B) {
	for _, n := range []int{1 << 10, 64 << 10} {
		body := bytes.Repeat([]byte{'x'}, n)
		field := ContentDigestSHA256(body)
		b.Run(strconv.Itoa(n>>10)+"KiB", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if err := CheckContentDigest(field, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyLegacy(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := bytes.Repeat([]byte(`{"id":1,"name":"thing"}`), 40)
	sig := LegacySign(secret, "1700000000", body)
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyLegacy(secret, "1700000000", body, sig) {
			b.Fatal("does not verify")
		}
	}
}
