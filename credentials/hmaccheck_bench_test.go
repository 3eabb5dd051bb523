package credentials

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkCheckHMAC signs a request and checks it, each iteration with a
// fresh signature (a new nonce for RFC 9421, a new body for the legacy
// scheme, whose replay key is the signature) so that replay protection
// does not deny; the clock moves 1 ms per iteration, so replay entries
// expire as they would at 1,000 requests a second. BenchmarkSignHMAC
// does the signing alone: Check's cost is the difference.
func BenchmarkCheckHMAC(b *testing.B) { benchmarkHMAC(b, true) }

// BenchmarkSignHMAC is BenchmarkCheckHMAC without the Check.
func BenchmarkSignHMAC(b *testing.B) { benchmarkHMAC(b, false) }

func benchmarkHMAC(b *testing.B, check bool) {
	for _, scheme := range []string{SchemeRFC9421, "legacy"} {
		for _, size := range []int{1 << 10, 64 << 10} {
			b.Run(scheme+"/"+strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
				benchmarkHMACOne(b, scheme == SchemeRFC9421, size, check)
			})
		}
	}
}

func benchmarkHMACOne(b *testing.B, rfc bool, size int, check bool) {
	w := newHMACWorld(b)
	now := t0
	w.c.Now = func() time.Time { return now }
	// A JSON body of size bytes whose first digits the legacy case
	// rewrites with the iteration number.
	body := []byte(`{"seq":"000000000000","data":"` + strings.Repeat("x", size-len(`{"seq":"000000000000","data":""}`)) + `"}`)
	h := map[string][]string{"content-type": {"application/json"}, "content-length": {strconv.Itoa(len(body))},
		"content-digest": {ContentDigestSHA256(body)}}
	s := &SignedRequest{
		Message:       HTTPMessage{Method: "POST", Authority: "api.example.com", Path: "/v1/events?source=bench", Scheme: "https", Header: func(n string) []string { return h[n] }},
		Body:          body,
		ContentLength: int64(len(body)),
	}
	if rfc {
		s.HasSignatureInput, s.HasSignature = true, true
	} else {
		s.HasLegacySignature, s.LegacyTenant = true, "acme"
	}
	r := &Request{Policy: DefaultPolicy, Signature: true, Signed: s}
	rfcSecret, legSecret := hmacSecret("hk_acme"), hmacSecret("hk_acmeleg")
	ctx := context.Background()
	var seq [12]byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		now = now.Add(time.Millisecond)
		if rfc {
			out, err := SignRFC9421(&s.Message, body, "hk_acme", rfcSecret, now, "n"+strconv.Itoa(i))
			if err != nil {
				b.Fatal(err)
			}
			s.SignatureInput, s.Signature = out["signature-input"], out["signature"]
		} else {
			n := strconv.AppendInt(seq[:0], int64(i), 10)
			copy(body[8+12-len(n):], n)
			ts := strconv.FormatInt(now.Unix(), 10)
			s.LegacyTimestamp, s.LegacySignature = ts, LegacySign(legSecret, ts, body)
		}
		if !check {
			continue
		}
		d, err := w.c.Check(ctx, r)
		if err != nil || !d.Allowed() {
			b.Fatalf("iteration %d: %q (%s) %v", i, d.Code, d.Reason, err)
		}
	}
}
