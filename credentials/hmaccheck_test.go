package credentials

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The HMAC lines of THREATS.md, each beside an allowed control, through
// Checker.Check: requests are signed with SignRFC9421 and LegacySign (or,
// for what those cannot produce, with the same parameters changed by
// hand and signed over SignatureBase), so a deny is the rule's and never
// a bad MAC's unless the case says so.

// hmacSecret returns the secret of the test HMAC key id: 32 bytes derived
// from the ID, so that signatures are reproducible (the fuzz corpus in
// testdata/fuzz/FuzzCheckHMAC relies on it).
func hmacSecret(id string) []byte {
	s := sha256.Sum256([]byte("keygate test HMAC secret " + id))
	return s[:]
}

// pySecret is the secret of hk_pyco as a Python sender holds it: text.
const pySecret = "py-webhook-secret-7f3a9c2e41d84b6aa0c5e9f1"

// hmacWorld is the fixture of the HMAC tests: an index of HMAC keys and a
// checker over it with a settable clock (at t0).
type hmacWorld struct {
	data  IndexData
	src   *source
	clock *clock
	c     *Checker
}

func newHMACWorld(t testing.TB) *hmacWorld {
	t.Helper()
	w := &hmacWorld{src: &source{}, clock: &clock{t0}}
	w.c = &Checker{Source: w.src, Now: w.clock.Now}
	d := IndexData{
		Revision: 11,
		Tenants: []Tenant{{Slug: "acme"}, {Slug: "globex"}, {Slug: "dead", Disabled: true}, {Slug: "initech"},
			{Slug: "umbrella"}, {Slug: "hooli"}, {Slug: "pyco"}, {Slug: "twice"}},
		Clients: []Client{
			{ID: "cl_acme", Tenant: "acme", Scopes: []string{"read:*", "write:projects"}, Roles: []string{"reader", "writer"}},
			{ID: "cl_globex", Tenant: "globex", Scopes: []string{"read:projects"}},
			{ID: "cl_off", Tenant: "acme", Disabled: true},
			{ID: "cl_dead", Tenant: "dead"},
			{ID: "cl_orphan", Tenant: "gone"},
			{ID: "cl_net", Tenant: "acme", AllowedCIDRs: []string{"10.0.0.0/8"}},
			{ID: "cl_rl", Tenant: "acme", RateLimit: "2/second"},
			{ID: "cl_initech", Tenant: "initech"},
			{ID: "cl_umbrella", Tenant: "umbrella"},
			{ID: "cl_hooli", Tenant: "hooli", Disabled: true},
			{ID: "cl_pyco", Tenant: "pyco", Scopes: []string{"events:write"}},
			{ID: "cl_twice", Tenant: "twice"},
		},
	}
	add := func(id, client, scheme string, k HMACKey) {
		k.ID, k.ClientID, k.Scheme = id, client, scheme
		if k.Secret == "" {
			k.Secret = base64.StdEncoding.EncodeToString(hmacSecret(id))
		}
		d.HMACKeys = append(d.HMACKeys, k)
	}
	rfc, leg := SchemeRFC9421, SchemeTimestampBody
	add("hk_acme", "cl_acme", rfc, HMACKey{})
	add("hk_acmeleg", "cl_acme", leg, HMACKey{})
	add("hk_globex", "cl_globex", rfc, HMACKey{}) // globex has no timestamp-body key
	add("hk_narrow", "cl_acme", rfc, HMACKey{Scopes: []string{"read:projects"}})
	add("hk_disabled", "cl_acme", rfc, HMACKey{Disabled: true})
	add("hk_expired", "cl_acme", rfc, HMACKey{ExpiresAt: ptr(t0.Add(-time.Second))})
	add("hk_expiring", "cl_acme", rfc, HMACKey{ExpiresAt: ptr(t0.Add(time.Second))})
	add("hk_off", "cl_off", rfc, HMACKey{})
	add("hk_dead", "cl_dead", rfc, HMACKey{})
	add("hk_deadleg", "cl_dead", leg, HMACKey{})
	add("hk_orphan", "cl_orphan", rfc, HMACKey{})
	add("hk_nobody", "cl_nobody", rfc, HMACKey{}) // its client does not exist: unknown
	// A secret under 32 bytes that reached the index (the admin API
	// refuses it): it never verifies.
	add("hk_short", "cl_acme", rfc, HMACKey{Secret: base64.StdEncoding.EncodeToString(hmacSecret("hk_short")[:16])})
	add("hk_net", "cl_net", rfc, HMACKey{})
	add("hk_rl", "cl_rl", rfc, HMACKey{})
	add("hk_initechleg", "cl_initech", leg, HMACKey{Disabled: true})
	add("hk_umbrellaleg", "cl_umbrella", leg, HMACKey{ExpiresAt: ptr(t0.Add(-time.Second))})
	add("hk_hoolileg", "cl_hooli", leg, HMACKey{})
	add("hk_pyco", "cl_pyco", leg, HMACKey{Secret: base64.StdEncoding.EncodeToString([]byte(pySecret))})
	// Two enabled timestamp-body keys of one tenant (the store refuses
	// that): the tenant gets none.
	add("hk_twice1", "cl_twice", leg, HMACKey{})
	add("hk_twice2", "cl_twice", leg, HMACKey{})
	w.data = d
	w.src.idx = BuildIndex(d, nil)
	return w
}

func (w *hmacWorld) check(t testing.TB, r *Request) Decision {
	t.Helper()
	d, err := w.c.Check(context.Background(), r)
	if err != nil {
		t.Fatalf("Check() error = %v", err)
	}
	return d
}

// sigReq is a request to sign with RFC 9421.
type sigReq struct {
	method, authority, path, scheme string
	header                          map[string][]string // more fields, by lower-case name
	body                            []byte
	keyID                           string
	secret                          []byte    // nil: hmacSecret(keyID)
	created                         time.Time // zero: t0
	nonce                           string
	// digest is the Content-Digest to send and sign; "": the sha-256 of
	// body (when there is one).
	digest string
	// params, when set, changes the parameters SignRFC9421 would sign
	// with (rfcParams) before signing by hand.
	params func(p *SigParams)
}

// baseSigReq is the signed request the RFC 9421 cases start from.
func baseSigReq() sigReq {
	return sigReq{
		method: "POST", authority: "api.example.com", path: "/v1/projects?limit=10&sort=name", scheme: "https",
		header: map[string][]string{"content-type": {"application/json"}},
		body:   []byte(`{"name":"apollo","tags":["a","b"]}`),
		keyID:  "hk_acme", nonce: "3f1c9a7e-0001",
	}
}

// build signs q and returns the request and its header fields (which a
// test may change afterwards: the request reads them).
func (q sigReq) build(t testing.TB) (*Request, map[string][]string) {
	t.Helper()
	h := make(map[string][]string, len(q.header)+4)
	for k, v := range q.header {
		h[k] = slices.Clone(v)
	}
	m := HTTPMessage{Method: q.method, Authority: q.authority, Path: q.path, Scheme: q.scheme,
		Header: func(name string) []string { return h[name] }}
	secret, created := q.secret, q.created
	if secret == nil {
		secret = hmacSecret(q.keyID)
	}
	if created.IsZero() {
		created = t0
	}
	if len(q.body) > 0 {
		h["content-length"] = []string{strconv.Itoa(len(q.body))}
	}
	var input, sig string
	if q.params == nil && q.digest == "" {
		out, err := SignRFC9421(&m, q.body, q.keyID, secret, created, q.nonce)
		if err != nil {
			t.Fatalf("SignRFC9421: %v", err)
		}
		if cd, ok := out["content-digest"]; ok {
			h["content-digest"] = []string{cd}
		}
		input, sig = out["signature-input"], out["signature"]
	} else {
		p := rfcParams(q.path, q.body, q.keyID, created, q.nonce)
		if len(q.body) > 0 {
			cd := q.digest
			if cd == "" {
				cd = ContentDigestSHA256(q.body)
			}
			h["content-digest"] = []string{cd}
		}
		if q.params != nil {
			q.params(&p)
		}
		input, sig = signParams(t, &m, p, secret)
	}
	h["signature-input"], h["signature"] = []string{input}, []string{sig}
	s := &SignedRequest{Message: m, SignatureInput: input, HasSignatureInput: true, Signature: sig, HasSignature: true,
		Body: q.body, ContentLength: -1}
	if len(q.body) > 0 {
		s.ContentLength = int64(len(q.body))
	}
	return &Request{Policy: DefaultPolicy, Signature: true, Signed: s}, h
}

// rfcParams returns the parameters SignRFC9421 signs a request with.
func rfcParams(path string, body []byte, keyID string, created time.Time, nonce string) SigParams {
	p := SigParams{
		Label:      "sig1",
		Components: []SigComponent{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}},
		Created:    created.Unix(), HasCreated: true,
		KeyID: keyID, Alg: AlgHMACSHA256,
		Nonce: nonce, HasNonce: nonce != "",
	}
	if strings.Contains(path, "?") {
		p.Components = append(p.Components, SigComponent{Name: "@query"})
	}
	if len(body) > 0 {
		p.Components = append(p.Components, SigComponent{Name: "content-digest"})
	}
	return p
}

// signParams signs m with p (built by hand) and returns the members
// `label=(...)...` of Signature-Input and `label=:...:` of Signature.
func signParams(t testing.TB, m *HTTPMessage, p SigParams, secret []byte) (input, sig string) {
	t.Helper()
	p.raw = ""
	sp, err := p.signatureParams()
	if err != nil {
		t.Fatalf("signatureParams: %v", err)
	}
	base, err := SignatureBase(m, &p)
	if err != nil {
		t.Fatalf("SignatureBase: %v", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(base)
	return p.Label + "=" + sp, p.Label + "=:" + base64.StdEncoding.EncodeToString(mac.Sum(nil)) + ":"
}

// without returns a params change that drops the covered component name.
func without(name string) func(p *SigParams) {
	return func(p *SigParams) {
		p.Components = slices.DeleteFunc(slices.Clone(p.Components), func(c SigComponent) bool { return c.Name == name })
	}
}

// flipByte returns a copy of b with byte i changed.
func flipByte(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x01
	return c
}

// legacyReq returns a request signed with the legacy scheme: X-Signature
// over "<ts>.<body>" with secret, X-Timestamp ts, X-Tenant-ID tenant.
func legacyReq(tenant string, secret []byte, ts string, body []byte) *Request {
	h := map[string][]string{"content-type": {"application/json"}}
	s := &SignedRequest{
		Message:         HTTPMessage{Method: "POST", Authority: "api.example.com", Path: "/hooks/orders", Scheme: "https", Header: func(n string) []string { return h[n] }},
		LegacySignature: LegacySign(secret, ts, body), HasLegacySignature: true,
		LegacyTimestamp: ts, LegacyTenant: tenant,
		Body: body, ContentLength: -1,
	}
	if len(body) > 0 {
		s.ContentLength = int64(len(body))
	}
	return &Request{Policy: DefaultPolicy, Signature: true, Signed: s}
}

func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

var legacyBody = []byte(`{"order_id":1042,"status":"paid","amount":"19.99"}`)

// TestSignParamsMatchesSignRFC9421 proves the hand signer of these tests:
// unchanged, it produces exactly what SignRFC9421 sends.
func TestSignParamsMatchesSignRFC9421(t *testing.T) {
	for _, q := range []sigReq{baseSigReq(), {method: "GET", authority: "a.example", path: "/x", scheme: "https", keyID: "hk_acme"}} {
		want, wantH := q.build(t)
		q.params = func(*SigParams) {}
		got, gotH := q.build(t)
		if got.Signed.SignatureInput != want.Signed.SignatureInput || got.Signed.Signature != want.Signed.Signature {
			t.Errorf("hand signer:\n%s\n%s\nSignRFC9421:\n%s\n%s", got.Signed.SignatureInput, got.Signed.Signature, want.Signed.SignatureInput, want.Signed.Signature)
		}
		if !cmp.Equal(gotH, wantH) {
			t.Errorf("header fields (-SignRFC9421 +hand):\n%s", cmp.Diff(wantH, gotH))
		}
	}
}

func TestCheckHMACRFC9421(t *testing.T) {
	body := baseSigReq().body
	tests := []struct {
		name   string
		q      func(q *sigReq)                         // before signing
		post   func(r *Request, h map[string][]string) // after signing
		c      func(c *Checker)
		code   DenyCode
		reason string // substring of Decision.Reason
	}{
		// Controls.
		{name: "signed request"},
		{name: "without nonce", q: func(q *sigReq) { q.nonce = "" }},
		{name: "GET without body or query", q: func(q *sigReq) { q.method, q.path, q.body = "GET", "/v1/projects", nil }},
		{name: "@query covered on a request without a query", q: func(q *sigReq) {
			q.path = "/v1/projects"
			q.params = func(p *SigParams) { p.Components = append(p.Components, SigComponent{Name: "@query"}) }
		}},
		{name: "host case and default port normalized", post: func(r *Request, _ map[string][]string) { r.Signed.Message.Authority = "API.Example.COM:443" }},
		{name: "alg absent (the key decides)", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Alg = "" } }},
		{name: "expires in the future", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Expires, p.HasExpires = t0.Unix()+1, true } }},
		{name: "more fields covered", q: func(q *sigReq) {
			q.params = func(p *SigParams) { p.Components = append(p.Components, SigComponent{Name: "content-type"}) }
		}},
		{name: "sha-256 and sha-512 digests", q: func(q *sigReq) {
			s512 := sha512.Sum512(q.body)
			q.digest = ContentDigestSHA256(q.body) + ", sha-512=:" + base64.StdEncoding.EncodeToString(s512[:]) + ":"
		}},
		{name: "key expiring in a second", q: func(q *sigReq) { q.keyID = "hk_expiring" }},
		{name: "another label", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Label = "kg" } }},

		// Any change to method, path, query, host or body.
		{name: "method changed", post: func(r *Request, _ map[string][]string) { r.Signed.Message.Method = "PUT" }, code: InvalidSignature, reason: "does not match"},
		{name: "method case changed", post: func(r *Request, _ map[string][]string) { r.Signed.Message.Method = "post" }, code: InvalidSignature, reason: "does not match"},
		{name: "path changed", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Path = "/v1/admin?limit=10&sort=name"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "path case changed", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Path = "/V1/projects?limit=10&sort=name"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "path trailing slash", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Path = "/v1/projects/?limit=10&sort=name"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "query parameter added", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Path += "&admin=true"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "query parameter removed", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Path = "/v1/projects?limit=10"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "query parameter altered", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Path = "/v1/projects?limit=1000&sort=name"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "query parameters reordered", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Path = "/v1/projects?sort=name&limit=10"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "query removed", post: func(r *Request, _ map[string][]string) { r.Signed.Message.Path = "/v1/projects" }, code: InvalidSignature, reason: "does not match"},
		{name: "query added to a request signed without one", q: func(q *sigReq) { q.method, q.path, q.body = "GET", "/v1/projects", nil },
			post: func(r *Request, _ map[string][]string) { r.Signed.Message.Path = "/v1/projects?all=1" }, code: InvalidSignature, reason: "does not cover @query"},
		{name: "empty query added to a request signed without one", q: func(q *sigReq) { q.method, q.path, q.body = "GET", "/v1/projects", nil },
			post: func(r *Request, _ map[string][]string) { r.Signed.Message.Path = "/v1/projects?" }, code: InvalidSignature, reason: "does not cover @query"},
		{name: "host changed", post: func(r *Request, _ map[string][]string) { r.Signed.Message.Authority = "evil.example.com" }, code: InvalidSignature, reason: "does not match"},
		{name: "port added", post: func(r *Request, _ map[string][]string) { r.Signed.Message.Authority = "api.example.com:8443" }, code: InvalidSignature, reason: "does not match"},
		{name: "scheme changed, port kept", post: func(r *Request, _ map[string][]string) {
			r.Signed.Message.Authority, r.Signed.Message.Scheme = "api.example.com:443", "http"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "one body byte, content-digest unchanged", post: func(r *Request, _ map[string][]string) { r.Signed.Body = flipByte(body, 9) },
			code: InvalidSignature, reason: "content-digest"},
		{name: "one body byte, content-digest recomputed", post: func(r *Request, h map[string][]string) {
			r.Signed.Body = flipByte(body, 9)
			h["content-digest"] = []string{ContentDigestSHA256(r.Signed.Body)}
		}, code: InvalidSignature, reason: "does not match"},
		{name: "body byte appended, length and digest updated", post: func(r *Request, h map[string][]string) {
			r.Signed.Body = append(slices.Clone(body), ' ')
			r.Signed.ContentLength++
			h["content-digest"] = []string{ContentDigestSHA256(r.Signed.Body)}
		}, code: InvalidSignature, reason: "does not match"},
		{name: "covered header changed", q: func(q *sigReq) {
			q.params = func(p *SigParams) { p.Components = append(p.Components, SigComponent{Name: "content-type"}) }
		}, post: func(r *Request, h map[string][]string) { h["content-type"] = []string{"text/plain"} }, code: InvalidSignature, reason: "does not match"},
		{name: "covered header removed", q: func(q *sigReq) {
			q.params = func(p *SigParams) { p.Components = append(p.Components, SigComponent{Name: "content-type"}) }
		}, post: func(r *Request, h map[string][]string) { delete(h, "content-type") }, code: InvalidSignature, reason: "signature base"},
		{name: "created changed within the window", post: func(r *Request, _ map[string][]string) {
			r.Signed.SignatureInput = strings.Replace(r.Signed.SignatureInput, "created="+unixString(t0), "created="+unixString(t0.Add(-time.Second)), 1)
		}, code: InvalidSignature, reason: "does not match"},
		{name: "nonce changed", post: func(r *Request, _ map[string][]string) {
			r.Signed.SignatureInput = strings.Replace(r.Signed.SignatureInput, `nonce="3f1c9a7e-0001"`, `nonce="3f1c9a7e-0002"`, 1)
		}, code: InvalidSignature, reason: "does not match"},
		{name: "keyid changed to another known key", post: func(r *Request, _ map[string][]string) {
			r.Signed.SignatureInput = strings.Replace(r.Signed.SignatureInput, `keyid="hk_acme"`, `keyid="hk_globex"`, 1)
		}, code: InvalidSignature, reason: "does not match"},
		{name: "signature bit flipped", post: func(r *Request, _ map[string][]string) {
			sig, _ := ParseSignatures(r.Signed.Signature)
			r.Signed.Signature = "sig1=:" + base64.StdEncoding.EncodeToString(flipByte(sig["sig1"], 31)) + ":"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "signature truncated", post: func(r *Request, _ map[string][]string) {
			sig, _ := ParseSignatures(r.Signed.Signature)
			r.Signed.Signature = "sig1=:" + base64.StdEncoding.EncodeToString(sig["sig1"][:16]) + ":"
		}, code: InvalidSignature, reason: "does not match"},
		{name: "wrong secret", q: func(q *sigReq) { q.secret = hmacSecret("hk_globex") }, code: InvalidSignature, reason: "does not match"},

		// The body Envoy forwarded.
		{name: "body not forwarded", post: func(r *Request, _ map[string][]string) { r.Signed.Body = nil }, code: InvalidSignature, reason: "did not forward whole"},
		{name: "body marked partial", post: func(r *Request, _ map[string][]string) { r.Signed.BodyPartial = true }, code: InvalidSignature, reason: "did not forward whole"},
		{name: "body truncated", post: func(r *Request, _ map[string][]string) { r.Signed.Body = body[:10] }, code: InvalidSignature, reason: "did not forward whole"},
		{name: "chunked body not forwarded", post: func(r *Request, _ map[string][]string) {
			r.Signed.Body, r.Signed.ContentLength, r.Signed.Chunked = nil, -1, true
		}, code: InvalidSignature, reason: "did not forward whole"},
		{name: "content-digest absent", post: func(r *Request, h map[string][]string) { delete(h, "content-digest") }, code: InvalidSignature, reason: "absent"},
		{name: "content-digest of an unsupported algorithm only", q: func(q *sigReq) { q.digest = "md5=:" + base64.StdEncoding.EncodeToString(make([]byte, 16)) + ":" },
			code: InvalidSignature, reason: "content-digest"},
		{name: "content-digest sha-512 wrong beside a right sha-256", q: func(q *sigReq) {
			q.digest = ContentDigestSHA256(q.body) + ", sha-512=:" + base64.StdEncoding.EncodeToString(make([]byte, 64)) + ":"
		}, code: InvalidSignature, reason: "content-digest"},

		// Coverage.
		{name: "body, content-digest not covered", q: func(q *sigReq) { q.params = without("content-digest") }, code: InvalidSignature, reason: "does not cover content-digest"},
		{name: "body not forwarded, content-digest not covered", q: func(q *sigReq) { q.params = without("content-digest") },
			post: func(r *Request, _ map[string][]string) { r.Signed.Body = nil }, code: InvalidSignature, reason: "does not cover content-digest"},
		{name: "chunked, content-digest not covered", q: func(q *sigReq) { q.method, q.path, q.body = "POST", "/v1/upload", nil },
			post: func(r *Request, _ map[string][]string) { r.Signed.Chunked = true }, code: InvalidSignature, reason: "does not cover content-digest"},
		{name: "query, @query not covered", q: func(q *sigReq) { q.params = without("@query") }, code: InvalidSignature, reason: "does not cover @query"},
		{name: "@query-param instead of @query", q: func(q *sigReq) {
			q.params = func(p *SigParams) {
				without("@query")(p)
				p.Components = append(p.Components, SigComponent{Name: "@query-param", Param: "limit"}, SigComponent{Name: "@query-param", Param: "sort"})
			}
		}, code: InvalidSignature, reason: "does not cover @query"},
		{name: "@method not covered", q: func(q *sigReq) { q.params = without("@method") }, code: InvalidSignature, reason: "does not cover @method"},
		{name: "@authority not covered", q: func(q *sigReq) { q.params = without("@authority") }, code: InvalidSignature, reason: "does not cover @authority"},
		{name: "@path not covered", q: func(q *sigReq) { q.params = without("@path") }, code: InvalidSignature, reason: "does not cover @path"},
		{name: "@request-target instead of @path and @query", q: func(q *sigReq) {
			q.params = func(p *SigParams) {
				without("@path")(p)
				without("@query")(p)
				p.Components = append(p.Components, SigComponent{Name: "@request-target"})
			}
		}, code: InvalidSignature, reason: "does not cover @path"},
		{name: "nothing covered", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Components = nil } }, code: InvalidSignature, reason: "does not cover"},

		// Parameters.
		{name: "expires passed", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Expires, p.HasExpires = t0.Unix()-1, true } }, code: InvalidSignature, reason: "expires"},
		{name: "expires now", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Expires, p.HasExpires = t0.Unix(), true } }, code: InvalidSignature, reason: "expires"},
		{name: "no created", q: func(q *sigReq) { q.params = func(p *SigParams) { p.HasCreated = false } }, code: InvalidSignature, reason: "no created"},
		{name: "alg hmac-sha512", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Alg = "hmac-sha512" } }, code: InvalidSignature, reason: "not hmac-sha256"},
		{name: "alg upper case", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Alg = "HMAC-SHA256" } }, code: InvalidSignature, reason: "not hmac-sha256"},
		{name: "alg rsa-pss-sha512", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Alg = "rsa-pss-sha512" } }, code: InvalidSignature, reason: "not hmac-sha256"},
		{name: "alg ed25519", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Alg = "ed25519" } }, code: InvalidSignature, reason: "not hmac-sha256"},
		{name: "alg none", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Alg = "none" } }, code: InvalidSignature, reason: "not hmac-sha256"},
		{name: "keyid unknown", q: func(q *sigReq) { q.keyID, q.secret = "hk_nope", hmacSecret("hk_acme") }, code: InvalidSignature, reason: "no signature with a known keyid"},
		{name: "keyid absent", q: func(q *sigReq) { q.params = func(p *SigParams) { p.KeyID = "" } }, code: InvalidSignature, reason: "no signature with a known keyid"},
		{name: "keyid of a key whose client is gone", q: func(q *sigReq) { q.keyID = "hk_nobody" }, code: InvalidSignature, reason: "no signature with a known keyid"},
		{name: "timestamp-body key used with RFC 9421", q: func(q *sigReq) { q.keyID = "hk_acmeleg" }, code: InvalidSignature, reason: "is a timestamp-body key"},
		{name: "key disabled", q: func(q *sigReq) { q.keyID = "hk_disabled" }, code: InvalidSignature, reason: "disabled"},
		{name: "key expired", q: func(q *sigReq) { q.keyID = "hk_expired" }, code: InvalidSignature, reason: "expired"},
		{name: "client disabled", q: func(q *sigReq) { q.keyID = "hk_off" }, code: InvalidSignature, reason: "client or tenant disabled"},
		{name: "tenant disabled", q: func(q *sigReq) { q.keyID = "hk_dead" }, code: InvalidSignature, reason: "client or tenant disabled"},
		{name: "tenant missing", q: func(q *sigReq) { q.keyID = "hk_orphan" }, code: InvalidSignature, reason: "client or tenant disabled"},
		{name: "secret under 32 bytes", q: func(q *sigReq) { q.keyID, q.secret = "hk_short", hmacSecret("hk_short")[:16] }, code: InvalidSignature, reason: "secret"},

		// Field shapes.
		{name: "Signature-Input without Signature", post: func(r *Request, _ map[string][]string) { r.Signed.Signature, r.Signed.HasSignature = "", false },
			code: InvalidSignature, reason: "both be present"},
		{name: "Signature without Signature-Input", post: func(r *Request, _ map[string][]string) {
			r.Signed.SignatureInput, r.Signed.HasSignatureInput = "", false
		},
			code: InvalidSignature, reason: "both be present"},
		{name: "empty Signature-Input", post: func(r *Request, _ map[string][]string) { r.Signed.SignatureInput = "" }, code: InvalidSignature, reason: "Signature-Input"},
		{name: "Signature under another label", post: func(r *Request, _ map[string][]string) {
			r.Signed.Signature = "sig2" + strings.TrimPrefix(r.Signed.Signature, "sig1")
		}, code: InvalidSignature, reason: "no value labelled"},
		{name: "Signature not a byte sequence", post: func(r *Request, _ map[string][]string) { r.Signed.Signature = `sig1="abc"` }, code: InvalidSignature, reason: "Signature"},
		{name: "Signature-Input not a dictionary", post: func(r *Request, _ map[string][]string) { r.Signed.SignatureInput = "(((" }, code: InvalidSignature, reason: "Signature-Input"},
		{name: "Signature-Input label given twice", post: func(r *Request, _ map[string][]string) {
			r.Signed.SignatureInput += ", " + r.Signed.SignatureInput
		}, code: InvalidSignature, reason: "Signature-Input"},
		{name: "both RFC 9421 and legacy headers", post: func(r *Request, _ map[string][]string) {
			l := legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(t0), body).Signed
			r.Signed.LegacySignature, r.Signed.HasLegacySignature, r.Signed.LegacyTimestamp, r.Signed.LegacyTenant = l.LegacySignature, true, l.LegacyTimestamp, l.LegacyTenant
		}, code: InvalidSignature, reason: "both RFC 9421 and legacy"},
		{name: "signature headers without the signed parts", post: func(r *Request, _ map[string][]string) { r.Signed = nil }, code: InvalidSignature, reason: "signed parts"},

		// Label choice.
		{name: "HMACLabel set, ours under it", q: func(q *sigReq) { q.params = func(p *SigParams) { p.Label = "kg" } },
			c: func(c *Checker) { c.HMACLabel = "kg" }},
		{name: "HMACLabel set, ours under another label", c: func(c *Checker) { c.HMACLabel = "kg" }, code: InvalidSignature, reason: `no signature labelled "kg"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newHMACWorld(t)
			if tt.c != nil {
				tt.c(w.c)
			}
			q := baseSigReq()
			if tt.q != nil {
				tt.q(&q)
			}
			r, h := q.build(t)
			if tt.post != nil {
				tt.post(r, h)
			}
			d := w.check(t, r)
			if d.Code != tt.code || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Check() = %q (%s), want %q (%s)", d.Code, d.Reason, tt.code, tt.reason)
			}
			if d.Method != MethodHMAC || d.Source != FromSignature {
				t.Errorf("Method, Source = %v, %v; want hmac, signature", d.Method, d.Source)
			}
			if tt.code == Allow && (d.Identity == nil || d.Identity.KeyID != q.keyID) {
				t.Errorf("allowed with identity %+v, want key %s", d.Identity, q.keyID)
			}
			if (d.SignatureBase != "") != strings.Contains(tt.reason, "does not match") {
				t.Errorf("SignatureBase = %q with reason %q: set only for a signature that does not match", d.SignatureBase, d.Reason)
			}
		})
	}
}

// TestCheckHMACWindow: created (RFC 9421) and X-Timestamp (legacy) are
// accepted within ±window inclusive (SPEC §7), by default 300 s, and a
// configured window is honoured up to 300 s.
func TestCheckHMACWindow(t *testing.T) {
	tests := []struct {
		window time.Duration
		offset int64 // created - now, seconds
		allow  bool
	}{
		{0, -301, false}, {0, -300, true}, {0, -299, true}, {0, 0, true}, {0, 299, true}, {0, 300, true}, {0, 301, false},
		{0, -1 << 30, false}, {0, 1 << 30, false},
		{60 * time.Second, -61, false}, {60 * time.Second, -60, true}, {60 * time.Second, 60, true}, {60 * time.Second, 61, false},
		{time.Second, -2, false}, {time.Second, -1, true}, {time.Second, 2, false},
		{time.Hour, -301, false}, {time.Hour, -300, true}, {time.Hour, 301, false}, // at most MaxHMACWindow
		{-time.Minute, -301, false}, {-time.Minute, -300, true}, // negative: the default
	}
	for _, tt := range tests {
		for _, scheme := range []string{SchemeRFC9421, SchemeTimestampBody} {
			t.Run(fmt.Sprintf("%s/window=%v/offset=%d", scheme, tt.window, tt.offset), func(t *testing.T) {
				w := newHMACWorld(t)
				w.c.HMACWindow = tt.window
				created := time.Unix(t0.Unix()+tt.offset, 0).UTC()
				var r *Request
				if scheme == SchemeRFC9421 {
					q := baseSigReq()
					q.created = created
					r, _ = q.build(t)
				} else {
					r = legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(created), legacyBody)
				}
				d := w.check(t, r)
				if d.Allowed() != tt.allow {
					t.Fatalf("Check() = %q (%s), want allowed = %v", d.Code, d.Reason, tt.allow)
				}
				if !tt.allow && (d.Code != InvalidSignature || !strings.Contains(d.Reason, "outside the window")) {
					t.Errorf("Check() = %q (%s), want invalid_signature outside the window", d.Code, d.Reason)
				}
			})
		}
	}
}

// TestCheckHMACReplay: a signed request is accepted once.
func TestCheckHMACReplay(t *testing.T) {
	mustAllow := func(t *testing.T, w *hmacWorld, r *Request, what string) {
		t.Helper()
		if d := w.check(t, r); !d.Allowed() {
			t.Fatalf("%s: %q (%s), want allowed", what, d.Code, d.Reason)
		}
	}
	mustReplay := func(t *testing.T, w *hmacWorld, r *Request, what string) {
		t.Helper()
		if d := w.check(t, r); d.Code != InvalidSignature || !strings.Contains(d.Reason, "replay") {
			t.Fatalf("%s: %q (%s), want invalid_signature replay", what, d.Code, d.Reason)
		}
	}
	t.Run("same request with nonce", func(t *testing.T) {
		w := newHMACWorld(t)
		r, _ := baseSigReq().build(t)
		mustAllow(t, w, r, "first")
		mustReplay(t, w, r, "second")
		w.clock.t = t0.Add(299 * time.Second)
		mustReplay(t, w, r, "299 s later")
		// A rebuilt index (a new revision) does not reset the cache.
		w.src.idx = BuildIndex(w.data, w.src.idx)
		w.clock.t = t0.Add(300 * time.Second)
		mustReplay(t, w, r, "at the edge of the window, new index")
		// Once the entry expires, the window refuses the request.
		w.clock.t = t0.Add(301 * time.Second)
		if d := w.check(t, r); d.Code != InvalidSignature || !strings.Contains(d.Reason, "outside the window") {
			t.Fatalf("after the window: %q (%s), want outside the window", d.Code, d.Reason)
		}
	})
	t.Run("same nonce on another request", func(t *testing.T) {
		w := newHMACWorld(t)
		r1, _ := baseSigReq().build(t)
		q := baseSigReq()
		q.path = "/v1/projects?limit=20&sort=name"
		r2, _ := q.build(t)
		mustAllow(t, w, r1, "first")
		mustReplay(t, w, r2, "same nonce, other request")
	})
	t.Run("same nonce under another key", func(t *testing.T) {
		w := newHMACWorld(t)
		r1, _ := baseSigReq().build(t)
		q := baseSigReq()
		q.keyID = "hk_globex"
		r2, _ := q.build(t)
		mustAllow(t, w, r1, "hk_acme")
		mustAllow(t, w, r2, "hk_globex, same nonce")
	})
	t.Run("without nonce", func(t *testing.T) {
		w := newHMACWorld(t)
		q := baseSigReq()
		q.nonce = ""
		r, _ := q.build(t)
		mustAllow(t, w, r, "first")
		mustReplay(t, w, r, "identical signature")
		// Two different requests without nonce in the same second.
		q.path = "/v1/projects?limit=11&sort=name"
		r2, _ := q.build(t)
		q.body = []byte(`{"name":"gemini"}`)
		r3, _ := q.build(t)
		mustAllow(t, w, r2, "other query, same second")
		mustAllow(t, w, r3, "other body, same second")
		// Identical requests signed a second apart are two requests.
		q.created = t0.Add(time.Second)
		r4, _ := q.build(t)
		mustAllow(t, w, r4, "signed a second later")
		mustReplay(t, w, r4, "that one again")
	})
	t.Run("empty nonce is no nonce", func(t *testing.T) {
		w := newHMACWorld(t)
		q := baseSigReq()
		q.params = func(p *SigParams) { p.Nonce, p.HasNonce = "", true }
		r, _ := q.build(t)
		if !strings.Contains(r.Signed.SignatureInput, `nonce=""`) {
			t.Fatalf("setup: %s", r.Signed.SignatureInput)
		}
		mustAllow(t, w, r, "first")
		mustReplay(t, w, r, "identical signature")
		q.path = "/v1/projects?limit=12&sort=name"
		r2, _ := q.build(t)
		mustAllow(t, w, r2, "another request with nonce=\"\"")
	})
	t.Run("denied requests do not spend a nonce", func(t *testing.T) {
		w := newHMACWorld(t)
		q := baseSigReq()
		q.secret = hmacSecret("hk_globex")
		bad, _ := q.build(t)
		if d := w.check(t, bad); d.Allowed() {
			t.Fatal("wrong secret allowed")
		}
		good, _ := baseSigReq().build(t)
		mustAllow(t, w, good, "the owner's request with the nonce an attacker tried")
	})
	t.Run("legacy", func(t *testing.T) {
		w := newHMACWorld(t)
		r := legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(t0), legacyBody)
		mustAllow(t, w, r, "first")
		mustReplay(t, w, r, "same X-Signature")
		upper := *r.Signed
		upper.LegacySignature = strings.ToUpper(upper.LegacySignature)
		mustReplay(t, w, &Request{Policy: r.Policy, Signature: true, Signed: &upper}, "same X-Signature in upper case")
		mustAllow(t, w, legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(t0), []byte(`{"order_id":1043}`)), "other body, same second")
		mustAllow(t, w, legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(t0.Add(time.Second)), legacyBody), "same body, next second")
		w.clock.t = t0.Add(300 * time.Second)
		mustReplay(t, w, r, "at the edge of the window")
		w.clock.t = t0.Add(301 * time.Second)
		if d := w.check(t, r); d.Code != InvalidSignature || !strings.Contains(d.Reason, "outside the window") {
			t.Fatalf("after the window: %q (%s), want outside the window", d.Code, d.Reason)
		}
	})
	t.Run("full cache refuses rather than forgets", func(t *testing.T) {
		w := newHMACWorld(t)
		w.c.ReplayCacheSize = 32
		var allowed []*Request
		full := 0
		for i := 0; i < 400; i++ {
			q := baseSigReq()
			q.nonce = fmt.Sprintf("n-%d", i)
			r, _ := q.build(t)
			switch d := w.check(t, r); {
			case d.Allowed():
				allowed = append(allowed, r)
			case d.Code == InvalidSignature && strings.Contains(d.Reason, "replay cache full"):
				full++
			default:
				t.Fatalf("request %d: %q (%s)", i, d.Code, d.Reason)
			}
		}
		if len(allowed) != 32 || full != 400-32 {
			t.Fatalf("allowed %d, refused as full %d; want 32 and %d", len(allowed), full, 400-32)
		}
		for _, r := range allowed {
			mustReplay(t, w, r, "an accepted request while the cache is full")
		}
		// Once the entries expire the cache takes new ones.
		w.clock.t = t0.Add(301 * time.Second)
		q := baseSigReq()
		q.created, q.nonce = w.clock.t, "after"
		r, _ := q.build(t)
		mustAllow(t, w, r, "after the entries expired")
	})
}

// TestCheckHMACReplayConcurrent sends one signed request from many
// goroutines at once: exactly one is allowed (run with -race).
func TestCheckHMACReplayConcurrent(t *testing.T) {
	w := newHMACWorld(t)
	r, _ := baseSigReq().build(t)
	l := legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(t0), legacyBody)
	var allowedRFC, allowedLegacy, allowedDistinct atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		q := baseSigReq()
		q.nonce = "g-" + strconv.Itoa(g)
		own, _ := q.build(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				for _, c := range []struct {
					r *Request
					n *atomic.Int64
				}{{r, &allowedRFC}, {l, &allowedLegacy}, {own, &allowedDistinct}} {
					d, err := w.c.Check(context.Background(), c.r)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed() {
						c.n.Add(1)
					} else if !strings.Contains(d.Reason, "replay") {
						t.Errorf("%q (%s), want a replay deny", d.Code, d.Reason)
					}
				}
			}
		}()
	}
	wg.Wait()
	if a, b, c := allowedRFC.Load(), allowedLegacy.Load(), allowedDistinct.Load(); a != 1 || b != 1 || c != 8 {
		t.Errorf("allowed %d RFC 9421, %d legacy, %d distinct; want 1, 1, 8", a, b, c)
	}
}

// TestCheckHMACKeyStates: an unknown keyid, a disabled or expired key and
// a key of a disabled client or tenant look the same to the caller
// (invalid_signature); the decision log (Reason) tells them apart.
func TestCheckHMACKeyStates(t *testing.T) {
	rfc := map[string]string{ // key ID → what the reason says
		"hk_nope":     "no signature with a known keyid",
		"hk_nobody":   "no signature with a known keyid",
		"hk_disabled": "disabled",
		"hk_expired":  "expired",
		"hk_off":      "client or tenant disabled",
		"hk_dead":     "client or tenant disabled",
		"hk_short":    "secret",
	}
	legacy := map[string]string{ // tenant → what the reason says
		"nope":     "no timestamp-body key",
		"globex":   "no timestamp-body key", // it has only an rfc9421 key
		"initech":  "disabled",
		"umbrella": "expired",
		"hooli":    "client or tenant disabled",
		"dead":     "client or tenant disabled",
		"twice":    "timestamp-body keys",
	}
	legacyKey := map[string]string{"nope": "hk_nope", "globex": "hk_globex", "initech": "hk_initechleg", "umbrella": "hk_umbrellaleg",
		"hooli": "hk_hoolileg", "dead": "hk_deadleg", "twice": "hk_twice1"}
	reasons := map[string]string{}
	for id, want := range rfc {
		w := newHMACWorld(t)
		q := baseSigReq()
		q.keyID = id
		r, _ := q.build(t)
		d := w.check(t, r)
		if d.Code != InvalidSignature || !strings.Contains(d.Reason, want) {
			t.Errorf("RFC 9421 %s: %q (%s), want invalid_signature (%s)", id, d.Code, d.Reason, want)
		}
		if d.SignatureBase != "" {
			t.Errorf("RFC 9421 %s: SignatureBase set: the key was never used", id)
		}
		if prev, ok := reasons[d.Reason]; ok && rfc[prev] != want {
			t.Errorf("RFC 9421 %s and %s share the reason %q", id, prev, d.Reason)
		}
		reasons[d.Reason] = id
	}
	reasons = map[string]string{}
	for tenant, want := range legacy {
		w := newHMACWorld(t)
		d := w.check(t, legacyReq(tenant, hmacSecret(legacyKey[tenant]), unixString(t0), legacyBody))
		if d.Code != InvalidSignature || !strings.Contains(d.Reason, want) {
			t.Errorf("legacy %s: %q (%s), want invalid_signature (%s)", tenant, d.Code, d.Reason, want)
		}
		if prev, ok := reasons[d.Reason]; ok && legacy[prev] != want {
			t.Errorf("legacy %s and %s share the reason %q", tenant, prev, d.Reason)
		}
		reasons[d.Reason] = tenant
	}
}

func TestCheckHMACLegacy(t *testing.T) {
	secret := hmacSecret("hk_acmeleg")
	ts := unixString(t0)
	tests := []struct {
		name   string
		r      func() *Request
		code   DenyCode
		reason string
	}{
		{name: "signed request", r: func() *Request { return legacyReq("acme", secret, ts, legacyBody) }},
		{name: "upper-case hex", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.LegacySignature = strings.ToUpper(r.Signed.LegacySignature)
			return r
		}},
		{name: "empty body", r: func() *Request { return legacyReq("acme", secret, ts, nil) }},

		// X-Timestamp shapes, each signed as sent.
		{name: "timestamp with plus sign", r: func() *Request { return legacyReq("acme", secret, "+"+ts, legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp with minus sign", r: func() *Request { return legacyReq("acme", secret, "-"+ts, legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp with leading zero", r: func() *Request { return legacyReq("acme", secret, "0"+ts, legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp with fraction", r: func() *Request { return legacyReq("acme", secret, ts+".0", legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp in milliseconds", r: func() *Request { return legacyReq("acme", secret, ts+"000", legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp with leading space", r: func() *Request { return legacyReq("acme", secret, " "+ts, legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp with trailing space", r: func() *Request { return legacyReq("acme", secret, ts+" ", legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp over 12 digits", r: func() *Request { return legacyReq("acme", secret, "1"+strings.Repeat("0", 12), legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp in exponent form", r: func() *Request { return legacyReq("acme", secret, "1.8934596e9", legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "timestamp of non-ASCII digits", r: func() *Request { return legacyReq("acme", secret, "١٨٩٣٤٥٩٦٠٠", legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "two timestamps merged", r: func() *Request { return legacyReq("acme", secret, ts+", "+ts, legacyBody) }, code: InvalidSignature, reason: "X-Timestamp"},
		{name: "X-Timestamp missing", r: func() *Request { return legacyReq("acme", secret, "", legacyBody) }, code: InvalidSignature, reason: "needs X-Timestamp"},
		{name: "X-Tenant-ID missing", r: func() *Request { return legacyReq("", secret, ts, legacyBody) }, code: InvalidSignature, reason: "X-Tenant-ID"},
		{name: "X-Signature missing", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.LegacySignature, r.Signed.HasLegacySignature = "", false
			return r
		}, code: InvalidSignature, reason: "does not match"},

		// Keys.
		{name: "tenant without a timestamp-body key", r: func() *Request { return legacyReq("globex", hmacSecret("hk_globex"), ts, legacyBody) }, code: InvalidSignature, reason: "no timestamp-body key"},
		{name: "rfc9421 key's secret for a tenant with a legacy key", r: func() *Request { return legacyReq("acme", hmacSecret("hk_acme"), ts, legacyBody) }, code: InvalidSignature, reason: "does not match"},
		{name: "another tenant's legacy secret", r: func() *Request { return legacyReq("acme", []byte(pySecret), ts, legacyBody) }, code: InvalidSignature, reason: "does not match"},
		{name: "tenants merged", r: func() *Request { return legacyReq("acme, pyco", secret, ts, legacyBody) }, code: InvalidSignature, reason: "no timestamp-body key"},
		{name: "tenant case changed", r: func() *Request { return legacyReq("ACME", secret, ts, legacyBody) }, code: InvalidSignature, reason: "no timestamp-body key"},

		// Signature and body.
		{name: "one body byte changed", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.Body = flipByte(legacyBody, 5)
			return r
		}, code: InvalidSignature, reason: "does not match"},
		{name: "signed for another timestamp", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.LegacyTimestamp = unixString(t0.Add(time.Second))
			return r
		}, code: InvalidSignature, reason: "does not match"},
		{name: "signature truncated", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.LegacySignature = r.Signed.LegacySignature[:62]
			return r
		}, code: InvalidSignature, reason: "does not match"},
		{name: "signature not hex", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.LegacySignature = "zz" + r.Signed.LegacySignature[2:]
			return r
		}, code: InvalidSignature, reason: "does not match"},
		{name: "signature with sha256= prefix", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.LegacySignature = "sha256=" + r.Signed.LegacySignature
			return r
		}, code: InvalidSignature, reason: "does not match"},
		{name: "body not forwarded", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.Body = nil
			return r
		}, code: InvalidSignature, reason: "did not forward whole"},
		{name: "body marked partial", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Signed.BodyPartial = true
			return r
		}, code: InvalidSignature, reason: "did not forward whole"},
		{name: "body truncated, signed as truncated", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody[:10])
			r.Signed.ContentLength = int64(len(legacyBody))
			return r
		}, code: InvalidSignature, reason: "did not forward whole"},
		{name: "chunked body not forwarded", r: func() *Request {
			r := legacyReq("acme", secret, ts, nil)
			r.Signed.Chunked = true
			return r
		}, code: InvalidSignature, reason: "did not forward whole"},
		{name: "legacy on a route without hmac", r: func() *Request {
			r := legacyReq("acme", secret, ts, legacyBody)
			r.Policy = Policy{Methods: MethodAPIKey | MethodJWT}
			return r
		}, code: NotAuthenticated, reason: "hmac not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newHMACWorld(t)
			d := w.check(t, tt.r())
			if d.Code != tt.code || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Check() = %q (%s), want %q (%s)", d.Code, d.Reason, tt.code, tt.reason)
			}
			if tt.code == Allow && (d.Identity == nil || d.Identity.KeyID != "hk_acmeleg") {
				t.Errorf("allowed with identity %+v, want hk_acmeleg", d.Identity)
			}
			if d.SignatureBase != "" {
				t.Errorf("SignatureBase = %q: legacy requests have none", d.SignatureBase)
			}
		})
	}
}

// TestCheckHMACLegacyPython signs a request exactly as a Python sender
// does, with the standard library, and checks keygate allows it.
// /usr/bin/python3 is required: the test fails without it.
func TestCheckHMACLegacyPython(t *testing.T) {
	const script = `
import hashlib, hmac, json, sys
secret, ts = sys.argv[1], sys.argv[2]
body = json.dumps({"event": "order.created", "order": {"id": 1042, "amount": "19.99"}, "note": "café ☃"}, ensure_ascii=False)
sig = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
print(json.dumps({"body": body, "sig": sig}))
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, pySecret, unixString(t0)).Output()
	if err != nil {
		t.Fatalf("/usr/bin/python3 (required by this test): %v", err)
	}
	var py struct{ Body, Sig string }
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	w := newHMACWorld(t)
	r := legacyReq("pyco", nil, unixString(t0), []byte(py.Body))
	r.Signed.LegacySignature = py.Sig
	d := w.check(t, r)
	if !d.Allowed() {
		t.Fatalf("Check() = %q (%s), want allowed", d.Code, d.Reason)
	}
	want := &Identity{TenantID: "pyco", Subject: "cl_pyco", ClientID: "cl_pyco", KeyID: "hk_pyco", Method: "hmac", Scopes: "events:write"}
	if !cmp.Equal(d.Identity, want) {
		t.Errorf("Identity (-want +got):\n%s", cmp.Diff(want, d.Identity))
	}
	// The same signature for another tenant is refused.
	r.Signed.LegacyTenant = "acme"
	if d := w.check(t, r); d.Allowed() {
		t.Error("python's signature allowed for tenant acme")
	}
}

// TestCheckHMACAuthorize: an allowed signature gets its identity, and
// the route's methods, tenant, scopes and roles, the client's CIDRs and
// rate limit apply to it.
func TestCheckHMACAuthorize(t *testing.T) {
	w := newHMACWorld(t)
	r, _ := baseSigReq().build(t)
	d := w.check(t, r)
	want := &Identity{TenantID: "acme", Subject: "cl_acme", ClientID: "cl_acme", KeyID: "hk_acme", Method: "hmac", Scopes: "read:* write:projects"}
	if !d.Allowed() || !cmp.Equal(d.Identity, want) {
		t.Fatalf("Check() = %q (%s), identity (-want +got):\n%s", d.Code, d.Reason, cmp.Diff(want, d.Identity))
	}
	if d.Method != MethodHMAC || d.Source != FromSignature || d.Accepted != AllMethods {
		t.Errorf("Method, Source, Accepted = %v, %v, %v", d.Method, d.Source, d.Accepted)
	}
	d = w.check(t, legacyReq("acme", hmacSecret("hk_acmeleg"), unixString(t0), legacyBody))
	want = &Identity{TenantID: "acme", Subject: "cl_acme", ClientID: "cl_acme", KeyID: "hk_acmeleg", Method: "hmac", Scopes: "read:* write:projects"}
	if !d.Allowed() || !cmp.Equal(d.Identity, want) {
		t.Fatalf("legacy: Check() = %q (%s), identity (-want +got):\n%s", d.Code, d.Reason, cmp.Diff(want, d.Identity))
	}

	nonce := 0
	signed := func(keyID string, p Policy, ip string) *Request {
		q := baseSigReq()
		q.keyID = keyID
		nonce++
		q.nonce = "authz-" + strconv.Itoa(nonce)
		r, _ := q.build(t)
		r.Policy = p
		if ip != "" {
			r.SourceIP = netip.MustParseAddr(ip)
		}
		return r
	}
	tests := []struct {
		name   string
		r      *Request
		code   DenyCode
		reason string
	}{
		{name: "scopes granted", r: signed("hk_acme", Policy{Methods: MethodHMAC, Scopes: "read:projects,write:projects"}, "")},
		{name: "scope missing", r: signed("hk_acme", Policy{Methods: MethodHMAC, Scopes: "admin"}, ""), code: InsufficientScope, reason: "missing scope admin"},
		{name: "narrow key within its scopes", r: signed("hk_narrow", Policy{Methods: MethodHMAC, Scopes: "read:projects"}, "")},
		{name: "narrow key beyond its scopes", r: signed("hk_narrow", Policy{Methods: MethodHMAC, Scopes: "read:users"}, ""), code: InsufficientScope},
		{name: "roles present", r: signed("hk_acme", Policy{Methods: MethodHMAC, Roles: "reader,writer"}, "")},
		{name: "role missing", r: signed("hk_acme", Policy{Methods: MethodHMAC, Roles: "admin"}, ""), code: InsufficientScope, reason: "missing role admin"},
		{name: "tenant pin own", r: signed("hk_acme", Policy{Methods: MethodHMAC, Tenant: "acme"}, "")},
		{name: "tenant pin other", r: signed("hk_acme", Policy{Methods: MethodHMAC, Tenant: "globex"}, ""), code: Forbidden, reason: "tenant"},
		{name: "route without hmac", r: signed("hk_acme", Policy{Methods: MethodAPIKey | MethodJWT}, ""), code: NotAuthenticated, reason: "hmac not accepted"},
		{name: "anonymous route, valid signature", r: signed("hk_acme", Policy{Methods: AllMethods, Anonymous: true}, "")},
		{name: "anonymous route, unknown key", r: signed("hk_nope", Policy{Methods: AllMethods, Anonymous: true}, ""), code: InvalidSignature},
		{name: "source in allowed_cidrs", r: signed("hk_net", DefaultPolicy, "10.9.8.7")},
		{name: "source outside allowed_cidrs", r: signed("hk_net", DefaultPolicy, "11.0.0.1"), code: IPNotAllowed},
		{name: "no source address", r: signed("hk_net", DefaultPolicy, ""), code: IPNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := w.check(t, tt.r)
			if d.Code != tt.code || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Check() = %q (%s), want %q (%s)", d.Code, d.Reason, tt.code, tt.reason)
			}
		})
	}

	// Rate limit 2/second: the third is refused with Retry-After.
	for i := 0; i < 2; i++ {
		if d := w.check(t, signed("hk_rl", DefaultPolicy, "")); !d.Allowed() {
			t.Fatalf("rate-limited client, request %d: %q (%s)", i+1, d.Code, d.Reason)
		}
	}
	d = w.check(t, signed("hk_rl", DefaultPolicy, ""))
	if d.Code != RateLimited || d.RetryAfter <= 0 || d.Identity == nil || d.Identity.KeyID != "hk_rl" {
		t.Fatalf("third request: %q RetryAfter %v identity %+v", d.Code, d.RetryAfter, d.Identity)
	}
}

// TestCheckHMACMultipleSignatures: a request may carry signatures for
// other verifiers; keygate verifies the first with a keyid of its store,
// or the one labelled Checker.HMACLabel.
func TestCheckHMACMultipleSignatures(t *testing.T) {
	q := baseSigReq()
	h := map[string][]string{"content-type": {"application/json"}, "content-digest": {ContentDigestSHA256(q.body)},
		"content-length": {strconv.Itoa(len(q.body))}}
	m := HTTPMessage{Method: q.method, Authority: q.authority, Path: q.path, Scheme: q.scheme, Header: func(n string) []string { return h[n] }}
	sign := func(label, keyID string, secret []byte) (string, string) {
		p := rfcParams(q.path, q.body, keyID, t0, "nonce-"+label+"-"+keyID)
		p.Label = label
		return signParams(t, &m, p, secret)
	}
	foreignIn, foreignSig := sign("proxy", "gateway-key-7", []byte("a secret keygate does not know, 32+ bytes"))
	oursIn, oursSig := sign("sig1", "hk_acme", hmacSecret("hk_acme"))
	ourKGIn, ourKGSig := sign("kg", "hk_acme", hmacSecret("hk_acme"))
	badIn, badSig := sign("early", "hk_globex", hmacSecret("hk_acme")) // a known keyid, the wrong secret
	foreignKGIn, foreignKGSig := sign("kg", "gateway-key-7", []byte("a secret keygate does not know, 32+ bytes"))
	join := func(s ...string) string { return strings.Join(s, ", ") }
	tests := []struct {
		name       string
		label      string
		input, sig string
		code       DenyCode
		reason     string
	}{
		{name: "foreign then ours", input: join(foreignIn, oursIn), sig: join(foreignSig, oursSig)},
		{name: "ours then foreign", input: join(oursIn, foreignIn), sig: join(oursSig, foreignSig)},
		{name: "signatures in another order than their inputs", input: join(foreignIn, oursIn), sig: join(oursSig, foreignSig)},
		{name: "foreign only", input: foreignIn, sig: foreignSig, code: InvalidSignature, reason: "no signature with a known keyid"},
		{name: "first known keyid fails, a later one would pass", input: join(badIn, oursIn), sig: join(badSig, oursSig), code: InvalidSignature, reason: "does not match"},
		{name: "HMACLabel: ours under it", label: "kg", input: join(foreignIn, ourKGIn), sig: join(foreignSig, ourKGSig)},
		{name: "HMACLabel: ours under another label", label: "kg", input: join(oursIn, foreignKGIn), sig: join(oursSig, foreignKGSig), code: InvalidSignature, reason: "no signature with a known keyid"},
		{name: "HMACLabel: ours under another label only", label: "kg", input: oursIn, sig: oursSig, code: InvalidSignature, reason: `no signature labelled "kg"`},
		{name: "HMACLabel: its signature value missing", label: "kg", input: join(oursIn, ourKGIn), sig: oursSig, code: InvalidSignature, reason: `no value labelled "kg"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newHMACWorld(t)
			w.c.HMACLabel = tt.label
			r := &Request{Policy: DefaultPolicy, Signature: true, Signed: &SignedRequest{Message: m, Body: q.body, ContentLength: int64(len(q.body)),
				SignatureInput: tt.input, HasSignatureInput: true, Signature: tt.sig, HasSignature: true}}
			d := w.check(t, r)
			if d.Code != tt.code || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("Check() = %q (%s), want %q (%s)", d.Code, d.Reason, tt.code, tt.reason)
			}
			if tt.code == Allow && d.Identity.KeyID != "hk_acme" {
				t.Errorf("allowed as %s", d.Identity.KeyID)
			}
		})
	}
}

// TestCheckHMACSignatureBase: a signature that does not match leaves the
// signature base keygate computed in the decision (for the debug log),
// and that base holds neither the secret nor the signature.
func TestCheckHMACSignatureBase(t *testing.T) {
	w := newHMACWorld(t)
	q := baseSigReq()
	q.params = func(p *SigParams) { p.Components = append(p.Components, SigComponent{Name: "content-type"}) }
	r, _ := q.build(t)
	r.Signed.Message.Path = "/v1/projects?limit=10&sort=name&evil=1"
	d := w.check(t, r)
	if d.Code != InvalidSignature || d.SignatureBase == "" {
		t.Fatalf("Check() = %q (%s), SignatureBase %q", d.Code, d.Reason, d.SignatureBase)
	}
	ps, err := ParseSignatureInput(r.Signed.SignatureInput)
	if err != nil {
		t.Fatal(err)
	}
	want, err := SignatureBase(&r.Signed.Message, &ps[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.SignatureBase != string(want) {
		t.Errorf("SignatureBase =\n%s\nwant\n%s", d.SignatureBase, want)
	}
	if !strings.Contains(d.SignatureBase, `"@query": ?limit=10&sort=name&evil=1`) {
		t.Errorf("SignatureBase does not show the query keygate saw:\n%s", d.SignatureBase)
	}
	secret := hmacSecret("hk_acme")
	sig, _ := ParseSignatures(r.Signed.Signature)
	for _, leak := range []string{
		string(secret), base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret),
		hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(sig["sig1"]), hex.EncodeToString(sig["sig1"]),
	} {
		if strings.Contains(d.SignatureBase, leak) || strings.Contains(d.Reason, leak) {
			t.Errorf("the decision holds a secret or the signature: %q", leak)
		}
	}
	// A mismatch with a legacy signature has no base.
	d = w.check(t, legacyReq("acme", hmacSecret("hk_acme"), unixString(t0), legacyBody))
	if d.Allowed() || d.SignatureBase != "" {
		t.Errorf("legacy mismatch: %q, SignatureBase %q", d.Code, d.SignatureBase)
	}
}

// TestCheckHMACIndexDelta: HMAC keys follow an index derived with With:
// a disabled tenant, a deleted or rotated key take effect at once.
func TestCheckHMACIndexDelta(t *testing.T) {
	w := newHMACWorld(t)
	nonce := 0
	rfc := func() *Request {
		q := baseSigReq()
		nonce++
		q.nonce = "delta-" + strconv.Itoa(nonce)
		r, _ := q.build(t)
		return r
	}
	step := func(name string, d *IndexDelta, r *Request, allow bool, reason string) {
		t.Helper()
		if d != nil {
			d.Revision = w.src.idx.Revision + 1
			w.src.idx = w.src.idx.With(d)
		}
		got := w.check(t, r)
		if got.Allowed() != allow || !strings.Contains(got.Reason, reason) {
			t.Fatalf("%s: %q (%s), want allowed = %v (%s)", name, got.Code, got.Reason, allow, reason)
		}
	}
	step("before", nil, rfc(), true, "")
	step("tenant disabled", &IndexDelta{Tenants: []Tenant{{Slug: "acme", Disabled: true}}}, rfc(), false, "client or tenant disabled")
	step("tenant enabled", &IndexDelta{Tenants: []Tenant{{Slug: "acme"}}}, rfc(), true, "")
	step("client disabled", &IndexDelta{Clients: []Client{{ID: "cl_acme", Tenant: "acme", Disabled: true}}}, rfc(), false, "client or tenant disabled")
	step("client enabled", &IndexDelta{Clients: []Client{{ID: "cl_acme", Tenant: "acme", Scopes: []string{"read:*"}}}}, rfc(), true, "")
	step("key disabled", &IndexDelta{HMACKeys: []HMACKey{{ID: "hk_acme", ClientID: "cl_acme", Scheme: SchemeRFC9421,
		Secret: base64.StdEncoding.EncodeToString(hmacSecret("hk_acme")), Disabled: true}}}, rfc(), false, "HMAC key disabled")
	step("key deleted", &IndexDelta{DeleteHMACKeys: []string{"hk_acme"}}, rfc(), false, "no signature with a known keyid")
	step("key back with another secret", &IndexDelta{HMACKeys: []HMACKey{{ID: "hk_acme", ClientID: "cl_acme", Scheme: SchemeRFC9421,
		Secret: base64.StdEncoding.EncodeToString(hmacSecret("rotated"))}}}, rfc(), false, "does not match")
	step("client deleted", &IndexDelta{DeleteClients: []string{"cl_acme"}}, rfc(), false, "no signature with a known keyid")

	// Legacy key rotation: the old key disabled, a new one added.
	leg := func(secret []byte, ts time.Time) *Request {
		return legacyReq("globex", secret, unixString(ts), legacyBody)
	}
	step("globex legacy before", nil, leg(hmacSecret("hk_globexleg"), t0), false, "no timestamp-body key")
	step("globex legacy added", &IndexDelta{HMACKeys: []HMACKey{{ID: "hk_globexleg", ClientID: "cl_globex", Scheme: SchemeTimestampBody,
		Secret: base64.StdEncoding.EncodeToString(hmacSecret("hk_globexleg"))}}}, leg(hmacSecret("hk_globexleg"), t0), true, "")
	step("globex legacy rotated", &IndexDelta{HMACKeys: []HMACKey{
		{ID: "hk_globexleg", ClientID: "cl_globex", Scheme: SchemeTimestampBody, Secret: base64.StdEncoding.EncodeToString(hmacSecret("hk_globexleg")), Disabled: true},
		{ID: "hk_globexleg2", ClientID: "cl_globex", Scheme: SchemeTimestampBody, Secret: base64.StdEncoding.EncodeToString(hmacSecret("hk_globexleg2"))},
	}}, leg(hmacSecret("hk_globexleg2"), t0.Add(time.Second)), true, "")
	step("old legacy key after rotation", nil, leg(hmacSecret("hk_globexleg"), t0.Add(2*time.Second)), false, "does not match")
}
