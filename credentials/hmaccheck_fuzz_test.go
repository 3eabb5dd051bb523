package credentials

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

// hmacFuzzSeed is one input of FuzzCheckHMAC: a request to
// api.example.com with either RFC 9421 fields (sigInput, signature) or,
// when legacy is set, X-Timestamp (sigInput) and X-Signature (signature)
// for tenant acme.
type hmacFuzzSeed struct {
	method, path  string
	body          []byte
	sigInput, sig string
	legacy        bool
	good          bool // signed correctly with hk_acme / hk_acmeleg
}

// hmacFuzzSeeds returns the seeds of FuzzCheckHMAC: requests signed
// correctly with the world's keys (at t0), and broken variants of them.
// testdata/fuzz/FuzzCheckHMAC holds the same shapes.
func hmacFuzzSeeds(t testing.TB) []hmacFuzzSeed {
	var seeds []hmacFuzzSeed
	for i, m := range []struct {
		method, path, body string
	}{
		{"POST", "/v1/projects?limit=10&sort=name", `{"name":"apollo"}`},
		{"GET", "/v1/projects", ""},
		{"GET", "/", ""},
		{"DELETE", "/v1/projects/42?force=true&force=false", ""},
		{"PUT", "/v1/caf%C3%A9?q=a+b&x=%20", "\x00\xff binary \r\n body"},
	} {
		q := sigReq{method: m.method, authority: "api.example.com", path: m.path, scheme: "https",
			header: map[string][]string{"content-type": {"application/json"}}, body: []byte(m.body),
			keyID: "hk_acme", nonce: "fuzz-" + strconv.Itoa(i)}
		if m.body == "" {
			q.body = nil
		}
		r, _ := q.build(t)
		s := r.Signed
		seeds = append(seeds, hmacFuzzSeed{m.method, m.path, q.body, s.SignatureInput, s.Signature, false, true})
		// Broken variants.
		seeds = append(seeds,
			hmacFuzzSeed{m.method, m.path + "x", q.body, s.SignatureInput, s.Signature, false, false},
			hmacFuzzSeed{m.method, m.path, q.body, strings.Replace(s.SignatureInput, "created=", "created=1", 1), s.Signature, false, false},
			hmacFuzzSeed{m.method, m.path, q.body, s.SignatureInput + `, proxy=("@method");keyid="x"`, s.Signature + ", proxy=:AAAA:", false, false},
			hmacFuzzSeed{m.method, m.path, q.body, strings.Replace(s.SignatureInput, `"@path"`, `"@request-target"`, 1), s.Signature, false, false},
		)
		l := legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(t0), q.body).Signed
		seeds = append(seeds,
			hmacFuzzSeed{m.method, m.path, q.body, l.LegacyTimestamp, l.LegacySignature, true, true},
			hmacFuzzSeed{m.method, m.path, q.body, "0" + l.LegacyTimestamp, l.LegacySignature, true, false},
		)
	}
	seeds = append(seeds,
		hmacFuzzSeed{"POST", "/", nil, `sig1=();created=1893499200;keyid="hk_acme"`, "sig1=::", false, false},
		hmacFuzzSeed{"POST", "/", nil, "", "", false, false},
		hmacFuzzSeed{"", "", nil, `sig1=("@method" "@authority" "@path");created=1893499200;keyid="hk_acme";alg="hmac-sha256"`, "sig1=:" + strings.Repeat("A", 43) + "=:", false, false},
	)
	return seeds
}

// FuzzCheckHMAC sends arbitrary Signature-Input, Signature, path, method
// and body (or X-Timestamp and X-Signature) through Check with real keys.
// Check must never panic or fail, and must allow only what a signer of
// the store signed: an allow must re-verify independently and carry one
// of the signatures the seeds were made with (no one else has the
// secret). The correctly signed seeds must be allowed.
//
//	go test -run=^$ -fuzz=FuzzCheckHMAC -fuzztime=30s ./credentials/
func FuzzCheckHMAC(f *testing.F) {
	w := newHMACWorld(f)
	seeds := hmacFuzzSeeds(f)
	ours := map[string]bool{} // signatures of the correctly signed seeds
	type exact struct {
		method, path, body, sigInput, sig string
		legacy                            bool
	}
	valid := map[exact]bool{}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body, s.sigInput, s.sig, s.legacy)
		if !s.good {
			continue
		}
		valid[exact{s.method, s.path, string(s.body), s.sigInput, s.sig, s.legacy}] = true
		if s.legacy {
			ours["l:"+s.sig] = true
		} else {
			sigs, err := ParseSignatures(s.sig)
			if err != nil {
				f.Fatal(err)
			}
			ours["r:"+string(sigs["sig1"])] = true
		}
	}
	rfcSecret, legSecret := hmacSecret("hk_acme"), hmacSecret("hk_acmeleg")
	now, win := t0.Unix(), int64(DefaultHMACWindow.Seconds())

	f.Fuzz(func(t *testing.T, method, path string, body []byte, sigInput, signature string, legacy bool) {
		h := map[string][]string{"content-type": {"application/json"}}
		if len(body) > 0 {
			h["content-digest"] = []string{ContentDigestSHA256(body)}
			h["content-length"] = []string{strconv.Itoa(len(body))}
		}
		m := HTTPMessage{Method: method, Authority: "api.example.com", Path: path, Scheme: "https", Header: func(n string) []string { return h[n] }}
		s := &SignedRequest{Message: m, Body: body, ContentLength: -1}
		if len(body) > 0 {
			s.ContentLength = int64(len(body))
		}
		if legacy {
			s.LegacyTimestamp, s.LegacySignature, s.HasLegacySignature, s.LegacyTenant = sigInput, signature, true, "acme"
		} else {
			s.SignatureInput, s.HasSignatureInput, s.Signature, s.HasSignature = sigInput, true, signature, true
		}
		// A fresh checker per input, so that a seed is not a replay of
		// itself.
		c := &Checker{Source: w.src, Now: w.clock.Now, ReplayCacheSize: 64}
		d, err := c.Check(context.Background(), &Request{Policy: DefaultPolicy, Signature: true, Signed: s})
		if err != nil {
			t.Fatalf("Check() error = %v", err)
		}
		if d.SignatureBase != "" && d.Reason != "signature does not match" {
			t.Fatalf("SignatureBase set on %q", d.Reason)
		}
		isSeed := valid[exact{method, path, string(body), sigInput, signature, legacy}]
		if !d.Allowed() {
			if isSeed {
				t.Fatalf("a correctly signed seed was denied: %q (%s)", d.Code, d.Reason)
			}
			if d.Code != InvalidSignature {
				t.Fatalf("deny code %q (%s), want invalid_signature", d.Code, d.Reason)
			}
			return
		}
		// An allow: verify it again without Check.
		if legacy {
			ts, ok := LegacyTimestamp(sigInput)
			if !ok || ts < now-win || ts > now+win || d.Identity.KeyID != "hk_acmeleg" {
				t.Fatalf("allowed legacy X-Timestamp %q as %s", sigInput, d.Identity.KeyID)
			}
			mac := hmac.New(sha256.New, legSecret)
			mac.Write([]byte(sigInput + "."))
			mac.Write(body)
			want := hex.EncodeToString(mac.Sum(nil))
			if strings.ToLower(signature) != want || !ours["l:"+want] {
				t.Fatalf("allowed legacy X-Signature %q: not one keygate's tests signed", signature)
			}
			return
		}
		ps, err := ParseSignatureInput(sigInput)
		if err != nil {
			t.Fatalf("allowed an unparsable Signature-Input: %v", err)
		}
		var p *SigParams
		for i := range ps {
			if _, known := w.src.idx.hmacKeys[ps[i].KeyID]; known {
				p = &ps[i]
				break
			}
		}
		if p == nil || p.KeyID != "hk_acme" || d.Identity.KeyID != "hk_acme" {
			t.Fatalf("allowed without a signature of hk_acme: %q", sigInput)
		}
		if !p.HasCreated || p.Created < now-win || p.Created > now+win || (p.HasExpires && p.Expires <= now) {
			t.Fatalf("allowed created=%d expires=%d outside the window", p.Created, p.Expires)
		}
		for _, c := range []string{"@method", "@authority", "@path"} {
			if !p.Covers(c) {
				t.Fatalf("allowed without %s covered", c)
			}
		}
		if strings.Contains(path, "?") && !p.Covers("@query") || len(body) > 0 && !p.Covers("content-digest") {
			t.Fatalf("allowed a query or body not covered: %q", sigInput)
		}
		sigs, err := ParseSignatures(signature)
		if err != nil {
			t.Fatalf("allowed an unparsable Signature: %v", err)
		}
		base, err := SignatureBase(&m, p)
		if err != nil {
			t.Fatalf("allowed a request without a signature base: %v", err)
		}
		mac := hmac.New(sha256.New, rfcSecret)
		mac.Write(base)
		if !VerifyHMACSHA256(rfcSecret, base, sigs[p.Label]) || !hmac.Equal(mac.Sum(nil), sigs[p.Label]) || !ours["r:"+string(sigs[p.Label])] {
			t.Fatalf("allowed a signature keygate's tests did not make:\n%s", base)
		}
	})
}
