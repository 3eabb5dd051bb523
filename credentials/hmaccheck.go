package credentials

import (
	"strconv"
	"strings"
	"time"
)

// DefaultHMACWindow is how far created (RFC 9421) or X-Timestamp (legacy)
// may be from now, either way, when Checker.HMACWindow is 0.
const DefaultHMACWindow = 300 * time.Second

// MaxHMACWindow is the largest window a Checker accepts (THREATS).
const MaxHMACWindow = 300 * time.Second

// SignedRequest is what Check needs of a request that carries signature
// headers (set by the adapter only then).
type SignedRequest struct {
	// Message is the request's method, authority, path, scheme and
	// header fields, for RFC 9421 signature bases.
	Message HTTPMessage
	// SignatureInput and Signature are the RFC 9421 fields;
	// HasSignatureInput/HasSignature tell empty from absent.
	SignatureInput, Signature       string
	HasSignatureInput, HasSignature bool
	// LegacySignature, LegacyTimestamp and LegacyTenant are X-Signature,
	// X-Timestamp and X-Tenant-ID.
	LegacySignature, LegacyTimestamp, LegacyTenant string
	HasLegacySignature                             bool
	// Body is the request body Envoy forwarded (raw_body, else body).
	Body []byte
	// BodyPartial is set when Envoy marked the body as partial
	// (x-envoy-auth-partial-body: true).
	BodyPartial bool
	// ContentLength is the request's Content-Length, or -1 when absent;
	// Chunked is set for a Transfer-Encoding (a body of unknown size).
	ContentLength int64
	Chunked       bool
}

// header returns the values of a header field of the request.
func (s *SignedRequest) header(name string) []string {
	if s.Message.Header == nil {
		return nil
	}
	return s.Message.Header(name)
}

// hasBody reports whether the request has a body, forwarded or not.
func (s *SignedRequest) hasBody() bool {
	return len(s.Body) > 0 || s.ContentLength > 0 || s.Chunked
}

// bodyComplete reports whether Body is the whole body of the request.
func (s *SignedRequest) bodyComplete() bool {
	if s.BodyPartial {
		return false
	}
	if s.ContentLength >= 0 {
		return int64(len(s.Body)) == s.ContentLength
	}
	return !s.Chunked || len(s.Body) > 0
}

// hmacWindow returns the checker's time window in seconds.
func (c *Checker) hmacWindow() int64 {
	w := c.HMACWindow
	if w <= 0 || w > MaxHMACWindow {
		w = DefaultHMACWindow
	}
	return int64(w / time.Second)
}

func (c *Checker) replay() *replayCache {
	c.replayOnce.Do(func() {
		size := c.ReplayCacheSize
		if size <= 0 {
			size = DefaultReplayCacheSize
		}
		// Short generations keep memory near what the window needs: an
		// entry lives until created+window, and a generation is dropped
		// once its last entry has expired, so about 1.5 windows' worth of
		// signed requests are held.
		c.replays = newReplayCache(size, max(1, c.hmacWindow()/4))
	})
	return c.replays
}

// checkHMAC decides a request that carries signature headers. d has
// Method and Accepted set.
func (c *Checker) checkHMAC(d Decision, r *Request, idx *Index, t time.Time) Decision {
	s := r.Signed
	if s == nil {
		d.Code, d.Reason = InvalidSignature, "signature headers without the request's signed parts"
		return d
	}
	rfc := s.HasSignatureInput || s.HasSignature
	switch {
	case rfc && s.HasLegacySignature:
		d.Code, d.Reason = InvalidSignature, "both RFC 9421 and legacy signature headers"
		return d
	case rfc:
		return c.checkRFC9421(d, r, s, idx, t)
	}
	return c.checkLegacy(d, r, s, idx, t)
}

func (c *Checker) checkRFC9421(d Decision, r *Request, s *SignedRequest, idx *Index, t time.Time) Decision {
	deny := func(reason string) Decision {
		d.Code, d.Reason = InvalidSignature, reason
		return d
	}
	if !s.HasSignatureInput || !s.HasSignature {
		return deny("Signature and Signature-Input must both be present")
	}
	params, err := ParseSignatureInput(s.SignatureInput)
	if err != nil {
		return deny("Signature-Input: " + err.Error())
	}
	sigs, err := ParseSignatures(s.Signature)
	if err != nil {
		return deny("Signature: " + err.Error())
	}
	// The signature for keygate: the configured label, or the first whose
	// keyid is a key of the store.
	var p *SigParams
	var e *hmacEntry
	for i := range params {
		q := &params[i]
		if c.HMACLabel != "" {
			if q.Label == c.HMACLabel {
				p, e = q, idx.hmacKeys[q.KeyID]
				break
			}
			continue
		}
		if k := idx.hmacKeys[q.KeyID]; k != nil {
			p, e = q, k
			break
		}
	}
	switch {
	case p == nil && c.HMACLabel != "":
		return deny("no signature labelled " + strconv.Quote(c.HMACLabel))
	case p == nil || e == nil:
		return deny("no signature with a known keyid")
	}
	d.Identity = &e.Identity
	sig, ok := sigs[p.Label]
	switch {
	case !ok:
		return deny("Signature has no value labelled " + strconv.Quote(clipString(p.Label, 64)))
	case e.Scheme != SchemeRFC9421:
		return deny("key " + e.Identity.KeyID + " is a " + e.Scheme + " key")
	case p.Alg != "" && p.Alg != "hmac-sha256":
		return deny("alg " + strconv.Quote(clipString(p.Alg, 32)) + " is not hmac-sha256")
	case !p.HasCreated:
		return deny("no created parameter")
	}
	now, w := t.Unix(), c.hmacWindow()
	if p.Created < now-w || p.Created > now+w {
		return deny("created is " + strconv.FormatInt(now-p.Created, 10) + "s from now, outside the window")
	}
	if p.HasExpires && p.Expires <= now {
		return deny("expires has passed")
	}
	for _, name := range [...]string{"@method", "@authority", "@path"} {
		if !p.Covers(name) {
			return deny("the signature does not cover " + name)
		}
	}
	if strings.IndexByte(s.Message.Path, '?') >= 0 && !p.Covers("@query") {
		return deny("the signature does not cover @query")
	}
	if s.hasBody() && !p.Covers("content-digest") {
		return deny("the request has a body and the signature does not cover content-digest")
	}
	if p.Covers("content-digest") {
		if !s.bodyComplete() {
			return deny("the signature covers the body, which Envoy did not forward whole")
		}
		cd := s.header("content-digest")
		if len(cd) == 0 {
			return deny("content-digest is covered but absent")
		}
		if err := CheckContentDigest(strings.Join(cd, ", "), s.Body); err != nil {
			return deny("content-digest: " + err.Error())
		}
	}
	base, err := SignatureBase(&s.Message, p)
	if err != nil {
		return deny("signature base: " + err.Error())
	}
	if why := e.inactive(t.UnixNano()); why != "" {
		return deny(why)
	}
	if !e.verify(base, sig) {
		d.SignatureBase = string(base)
		return deny("signature does not match")
	}
	key := "s:" + string(sig)
	if p.HasNonce && p.Nonce != "" { // nonce="" is no nonce
		key = "n:" + e.Identity.KeyID + ":" + p.Nonce
	}
	if reason := c.seen(key, p.Created+w, now); reason != "" {
		return deny(reason)
	}
	c.authorize(&d, r, e.Client, e.Scopes, t)
	return d
}

// seen records a verified request's nonce or signature until it leaves
// the window. It returns why a second use within the window, or a full
// replay cache, is denied ("" for a first use).
func (c *Checker) seen(key string, until, now int64) string {
	switch c.replay().check(key, until, now) {
	case replayFresh:
		return ""
	case replaySeen:
		return "replay: nonce or signature seen within the window"
	}
	return "replay cache full: refusing rather than forgetting a signature"
}

func (c *Checker) checkLegacy(d Decision, r *Request, s *SignedRequest, idx *Index, t time.Time) Decision {
	deny := func(reason string) Decision {
		d.Code, d.Reason = InvalidSignature, reason
		return d
	}
	if s.LegacyTimestamp == "" || s.LegacyTenant == "" {
		return deny("X-Signature needs X-Timestamp and X-Tenant-ID")
	}
	ts, ok := LegacyTimestamp(s.LegacyTimestamp)
	if !ok {
		return deny("X-Timestamp is not decimal Unix seconds")
	}
	now, w := t.Unix(), c.hmacWindow()
	if ts < now-w || ts > now+w {
		return deny("X-Timestamp is " + strconv.FormatInt(now-ts, 10) + "s from now, outside the window")
	}
	e, ok := idx.legacy[s.LegacyTenant]
	switch {
	case !ok:
		return deny("tenant has no timestamp-body key")
	case e == nil:
		return deny("tenant has several enabled timestamp-body keys: none is used")
	}
	d.Identity = &e.Identity
	if s.hasBody() && !s.bodyComplete() {
		return deny("the request has a body that Envoy did not forward whole")
	}
	if why := e.inactive(t.UnixNano()); why != "" {
		return deny(why)
	}
	if !e.verifyLegacy(s.LegacyTimestamp, s.Body, s.LegacySignature) {
		return deny("signature does not match")
	}
	if reason := c.seen("l:"+s.LegacyTenant+":"+strings.ToLower(s.LegacySignature), ts+w, now); reason != "" {
		return deny(reason)
	}
	c.authorize(&d, r, e.Client, e.Scopes, t)
	return d
}
