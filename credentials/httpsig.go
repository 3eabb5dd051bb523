package credentials

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
	"unicode/utf8"
)

// RFC 9421 HTTP Message Signatures, the part keygate verifies: requests
// signed with alg="hmac-sha256" over derived components and header
// fields without parameters (SPEC §3, §7). Anything keygate could not
// rebuild byte for byte (the sf, key, bs, req and tr parameters,
// @status, trailers, a field value with a line break) is refused with
// an error rather than guessed at: a signature is only ever checked
// against a signature base that is exactly the signer's.

// Limits on what ParseSignatureInput and ParseSignatures accept.
const (
	// MaxSignatureFieldLen bounds a Signature-Input or Signature value.
	MaxSignatureFieldLen = 8 << 10
	// MaxSignatures bounds the signatures of one message.
	MaxSignatures = 32
	// MaxSignatureComponents bounds the covered components of one
	// signature.
	MaxSignatureComponents = 64
)

// AlgHMACSHA256 is the RFC 9421 "alg" of HMAC-SHA256 signatures.
const AlgHMACSHA256 = "hmac-sha256"

// HTTPMessage is the request as keygate sees it, for signature bases.
type HTTPMessage struct {
	// Method is the method as sent (":method"); it is case-sensitive.
	Method string
	// Authority is ":authority" (host[:port]) as sent. SignatureBase
	// normalizes it as RFC 9421 §2.2.3 asks: the host lower-cased, the
	// default port of Scheme dropped.
	Authority string
	// Path is ":path": the path and query as sent, for example
	// "/foo?param=Value&Pet=dog".
	Path string
	// Scheme is "https" or "http"; "" when unknown, and then @scheme and
	// @target-uri cannot be covered.
	Scheme string
	// Header returns the field values of a header (lower-case name), in
	// order; a nil or empty result means the header is absent. A nil
	// Header means no header is present.
	Header func(name string) []string
}

// SigParams is one signature's metadata from Signature-Input (RFC 9421
// §2.3, §4.1).
type SigParams struct {
	Label      string
	Components []SigComponent
	Created    int64 // Unix seconds
	HasCreated bool
	Expires    int64 // Unix seconds
	HasExpires bool
	Nonce      string
	HasNonce   bool
	Alg        string
	KeyID      string
	Tag        string

	// raw is the value of "@signature-params": the RFC 8941
	// serialization of the inner list and its parameters as received
	// (parameters in their order, unknown ones included). When it is
	// empty (SigParams built by hand) it is built from the fields.
	raw string
}

// SigComponent is one covered component identifier: "@method",
// "content-digest", "@query-param";name="id"...
type SigComponent struct {
	// Name is the component name, lower-case; derived components start
	// with "@".
	Name string
	// Param is the name parameter of "@query-param" (its encoded form,
	// as in the identifier), and empty for every other component:
	// keygate supports no other component parameter.
	Param string
}

// String returns the component identifier as it appears in a signature
// base, for example `"@query-param";name="Pet"`.
func (c SigComponent) String() string { return string(appendComponentID(nil, c)) }

// Covers reports whether p covers the component name without
// parameters ("@method", "content-digest", ...).
func (p *SigParams) Covers(name string) bool {
	for _, c := range p.Components {
		if c.Name == name && c.Param == "" {
			return true
		}
	}
	return false
}

// sigInputOptions are the parser settings for Signature-Input and
// Signature: no duplicate labels or parameters (RFC 8941 would let the
// last win; here that would let a verifier and a signer disagree), and
// bounds that keep parsing cheap.
var sigInputOptions = sfOptions{
	noDupKeys:   true,
	noDupParams: true,
	maxMembers:  MaxSignatures,
	maxItems:    MaxSignatureComponents,
	maxParams:   16,
}

var sigOptions = sfOptions{
	noDupKeys:   true,
	noDupParams: true,
	strictBytes: true,
	maxMembers:  MaxSignatures,
	maxParams:   16,
}

// ParseSignatureInput parses a Signature-Input field value: an RFC 8941
// Dictionary whose members are Inner Lists of component identifiers with
// the signature parameters (RFC 9421 §4.1). Several field lines must be
// joined with ", " first. The signatures keep their order. Errors
// describe the problem and never quote more than a short label or
// component name.
func ParseSignatureInput(v string) ([]SigParams, error) {
	if len(v) > MaxSignatureFieldLen {
		return nil, fmt.Errorf("signature-input: longer than %d bytes", MaxSignatureFieldLen)
	}
	ms, err := sfParseDictionary(v, sigInputOptions)
	if err != nil {
		return nil, fmt.Errorf("signature-input: %w", err)
	}
	if len(ms) == 0 {
		return nil, errors.New("signature-input: no signature")
	}
	n := 0
	for i := range ms {
		n += len(ms[i].list)
	}
	comps := make([]SigComponent, n)
	out := make([]SigParams, len(ms))
	var stack [512]byte
	for i := range ms {
		m := &ms[i]
		p := &out[i]
		p.Label = m.key
		if !m.inner {
			return nil, fmt.Errorf("signature-input: signature %q is not an inner list", clipString(m.key, 32))
		}
		p.Components = comps[:len(m.list):len(m.list)]
		comps = comps[len(m.list):]
		for j, it := range m.list {
			c, err := componentOf(it)
			if err != nil {
				return nil, fmt.Errorf("signature-input: signature %q: %w", clipString(m.key, 32), err)
			}
			p.Components[j] = c
		}
		if err := checkDuplicateComponents(p.Components); err != nil {
			return nil, fmt.Errorf("signature-input: signature %q: %w", clipString(m.key, 32), err)
		}
		for _, prm := range m.params {
			if err := p.setParam(prm); err != nil {
				return nil, fmt.Errorf("signature-input: signature %q: %w", clipString(m.key, 32), err)
			}
		}
		// The value of @signature-params is the canonical serialization;
		// reuse the input when it is already canonical.
		b := sfAppendInnerList(stack[:0], m.list, m.params)
		if string(b) == v[m.start:m.end] {
			p.raw = v[m.start:m.end]
		} else {
			p.raw = string(b)
		}
	}
	return out, nil
}

// componentOf turns an inner-list item into a SigComponent, refusing
// what keygate cannot rebuild.
func componentOf(it sfItem) (SigComponent, error) {
	if it.bare.typ != sfString {
		return SigComponent{}, fmt.Errorf("component identifier is a %s, not a string", it.bare.typ)
	}
	c := SigComponent{Name: it.bare.str}
	if c.Name == "@query-param" {
		if len(it.params) != 1 || it.params[0].key != "name" || it.params[0].val.typ != sfString {
			return SigComponent{}, errors.New(`"@query-param" needs exactly one parameter, name, a string`)
		}
		c.Param = it.params[0].val.str
		return c, checkComponent(c)
	}
	if len(it.params) > 0 {
		k := it.params[0].key
		switch k {
		case "sf", "key", "bs", "req", "tr", "name":
			return SigComponent{}, fmt.Errorf("component %q: parameter %q is not supported", clipString(c.Name, 40), k)
		}
		return SigComponent{}, fmt.Errorf("component %q: unknown parameter %q", clipString(c.Name, 40), clipString(k, 20))
	}
	return c, checkComponent(c)
}

// checkComponent reports whether keygate can compute c.
func checkComponent(c SigComponent) error {
	if c.Name == "" {
		return errors.New("empty component name")
	}
	if c.Name[0] == '@' {
		switch c.Name {
		case "@method", "@authority", "@scheme", "@target-uri", "@request-target", "@path", "@query":
			if c.Param != "" {
				return fmt.Errorf("component %q takes no parameter", c.Name)
			}
			return nil
		case "@query-param":
			if !sfValidString(c.Param) {
				return errors.New(`"@query-param": invalid name`)
			}
			return nil
		}
		return fmt.Errorf("derived component %q is not supported", clipString(c.Name, 40))
	}
	if c.Param != "" {
		return fmt.Errorf("component %q takes no parameter", clipString(c.Name, 40))
	}
	for i := 0; i < len(c.Name); i++ {
		ch := c.Name[i]
		if ch >= 'A' && ch <= 'Z' {
			return fmt.Errorf("component %q: field names must be lower-case", clipString(c.Name, 40))
		}
		if !sfTchar[ch] {
			return errors.New("component name is not a valid field name")
		}
	}
	return nil
}

// checkDuplicateComponents refuses a component identifier given twice.
func checkDuplicateComponents(cs []SigComponent) error {
	for i := 1; i < len(cs); i++ {
		for j := 0; j < i; j++ {
			if cs[i] == cs[j] {
				return fmt.Errorf("component %s covered twice", clipString(cs[i].String(), 48))
			}
		}
	}
	return nil
}

// setParam applies one signature parameter (RFC 9421 §2.3). Parameters
// keygate does not know are kept in the serialization (they are signed)
// and otherwise ignored.
func (p *SigParams) setParam(prm sfParam) error {
	want := sfString
	switch prm.key {
	case "created", "expires":
		want = sfInteger
	case "nonce", "alg", "keyid", "tag":
	default:
		return nil
	}
	if prm.val.typ != want {
		return fmt.Errorf("parameter %s is a %s, not a %s", prm.key, prm.val.typ, want)
	}
	switch prm.key {
	case "created":
		if prm.val.num < 0 {
			return errors.New("parameter created is negative")
		}
		p.Created, p.HasCreated = prm.val.num, true
	case "expires":
		if prm.val.num < 0 {
			return errors.New("parameter expires is negative")
		}
		p.Expires, p.HasExpires = prm.val.num, true
	case "nonce":
		p.Nonce, p.HasNonce = prm.val.str, true
	case "alg":
		p.Alg = prm.val.str
	case "keyid":
		p.KeyID = prm.val.str
	case "tag":
		p.Tag = prm.val.str
	}
	return nil
}

// signatureParams returns the value of "@signature-params": the
// received serialization, or for SigParams built by hand the
// serialization of its fields, parameters in the order created,
// expires, keyid, alg, nonce, tag (absent ones left out).
func (p *SigParams) signatureParams() (string, error) {
	if p.raw != "" {
		return p.raw, nil
	}
	b := make([]byte, 0, 128)
	b = append(b, '(')
	for i, c := range p.Components {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendComponentID(b, c)
	}
	b = append(b, ')')
	if p.HasCreated {
		b = append(b, ";created="...)
		b = sfAppendBare(b, sfBareItem{typ: sfInteger, num: p.Created})
	}
	if p.HasExpires {
		b = append(b, ";expires="...)
		b = sfAppendBare(b, sfBareItem{typ: sfInteger, num: p.Expires})
	}
	for _, s := range [...]struct {
		key, val string
		has      bool
	}{
		{"keyid", p.KeyID, p.KeyID != ""},
		{"alg", p.Alg, p.Alg != ""},
		{"nonce", p.Nonce, p.HasNonce},
		{"tag", p.Tag, p.Tag != ""},
	} {
		if !s.has {
			continue
		}
		if !sfValidString(s.val) {
			return "", fmt.Errorf("parameter %s is not printable ASCII", s.key)
		}
		b = append(b, ';')
		b = append(b, s.key...)
		b = append(b, '=')
		b = sfAppendString(b, s.val)
	}
	return string(b), nil
}

// appendComponentID appends the serialized component identifier:
// `"name"`, or `"@query-param";name="..."`.
func appendComponentID(b []byte, c SigComponent) []byte {
	b = sfAppendString(b, c.Name)
	if c.Name == "@query-param" {
		b = append(b, `;name=`...)
		b = sfAppendString(b, c.Param)
	}
	return b
}

// ParseSignatures parses a Signature field value: an RFC 8941
// Dictionary of Byte Sequences, label → signature bytes (RFC 9421
// §4.2). The base64 must be canonical (padded, zero pad bits), so one
// signature has exactly one spelling; duplicate labels, parameters and
// empty signatures are refused.
func ParseSignatures(v string) (map[string][]byte, error) {
	if len(v) > MaxSignatureFieldLen {
		return nil, fmt.Errorf("signature: longer than %d bytes", MaxSignatureFieldLen)
	}
	ms, err := sfParseDictionary(v, sigOptions)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if len(ms) == 0 {
		return nil, errors.New("signature: no signature")
	}
	out := make(map[string][]byte, len(ms))
	for i := range ms {
		m := &ms[i]
		switch {
		case m.inner || m.item.bare.typ != sfBytes:
			return nil, fmt.Errorf("signature: %q is not a byte sequence", clipString(m.key, 32))
		case len(m.item.params) > 0:
			return nil, fmt.Errorf("signature: %q has parameters", clipString(m.key, 32))
		case len(m.item.bare.bin) == 0:
			return nil, fmt.Errorf("signature: %q is empty", clipString(m.key, 32))
		}
		out[m.key] = m.item.bare.bin
	}
	return out, nil
}

// SignatureBase returns the RFC 9421 §2.5 signature base of m for p:
// one line per covered component, then the "@signature-params" line,
// without a trailing newline.
//
// Derived components: @method, @authority, @scheme, @target-uri,
// @request-target, @path, @query (value "?" without a query, §2.2.7),
// @query-param;name="…" (§2.2.8: the parameter decoded as
// application/x-www-form-urlencoded and percent-encoded again). Header
// fields: the values trimmed and joined with ", " (§2.1). A covered
// field that is absent, a query parameter that is absent or repeated, a
// component given twice, a component keygate does not support, and any
// value with a CR, LF or NUL (which could forge lines of the base) are
// errors.
func SignatureBase(m *HTTPMessage, p *SigParams) ([]byte, error) {
	if len(p.Components) > MaxSignatureComponents {
		return nil, fmt.Errorf("more than %d covered components", MaxSignatureComponents)
	}
	for _, c := range p.Components {
		if err := checkComponent(c); err != nil {
			return nil, err
		}
	}
	if err := checkDuplicateComponents(p.Components); err != nil {
		return nil, err
	}
	sp, err := p.signatureParams()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 96*len(p.Components)+len(sp)+24)
	for _, c := range p.Components {
		b = appendComponentID(b, c)
		b = append(b, ": "...)
		mark := len(b)
		if b, err = appendComponentValue(b, m, c); err != nil {
			return nil, err
		}
		if !baseValueOK(b[mark:]) {
			return nil, fmt.Errorf("%s: value contains a control character", clipString(c.String(), 48))
		}
		b = append(b, '\n')
	}
	b = append(b, `"@signature-params": `...)
	b = append(b, sp...)
	return b, nil
}

// baseValueOK reports whether a component value can go into a signature
// base: no CR, LF or NUL.
func baseValueOK(v []byte) bool {
	for _, c := range v {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// appendComponentValue appends the value of one component.
func appendComponentValue(b []byte, m *HTTPMessage, c SigComponent) ([]byte, error) {
	switch c.Name {
	case "@method":
		if m.Method == "" {
			return nil, errors.New("@method: no method")
		}
		return append(b, m.Method...), nil
	case "@authority":
		if m.Authority == "" {
			return nil, errors.New("@authority: no authority")
		}
		return appendAuthority(b, m.Authority, m.Scheme), nil
	case "@scheme":
		if m.Scheme == "" {
			return nil, errors.New("@scheme: scheme unknown")
		}
		return appendLower(b, m.Scheme), nil
	case "@target-uri":
		if m.Scheme == "" || m.Authority == "" {
			return nil, errors.New("@target-uri: scheme or authority unknown")
		}
		b = appendLower(b, m.Scheme)
		b = append(b, "://"...)
		b = appendAuthority(b, m.Authority, m.Scheme)
		switch {
		case m.Path == "*":
			return b, nil
		case strings.HasPrefix(m.Path, "/"):
			return append(b, m.Path...), nil
		}
		return nil, errors.New("@target-uri: path is not origin-form")
	case "@request-target":
		if m.Path == "" {
			return nil, errors.New("@request-target: no request target")
		}
		return append(b, m.Path...), nil
	case "@path":
		path, _, _ := strings.Cut(m.Path, "?")
		if path == "" {
			path = "/"
		}
		return append(b, path...), nil
	case "@query":
		_, query, _ := strings.Cut(m.Path, "?")
		b = append(b, '?')
		return append(b, query...), nil
	case "@query-param":
		_, query, _ := strings.Cut(m.Path, "?")
		return appendQueryParam(b, query, c.Param)
	}
	var vals []string
	if m.Header != nil {
		vals = m.Header(c.Name)
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("covered field %q is absent", clipString(c.Name, 40))
	}
	for i, v := range vals {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, strings.Trim(v, " \t")...)
	}
	return b, nil
}

// appendAuthority appends authority normalized per RFC 9110 §4.2.3: the
// host lower-cased, an empty or default port (443 for https, 80 for
// http) dropped.
func appendAuthority(b []byte, authority, scheme string) []byte {
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		host, port = authority[:i], authority[i+1:]
	}
	b = appendLower(b, host)
	switch {
	case port == "":
	case port == "443" && strings.EqualFold(scheme, "https"):
	case port == "80" && strings.EqualFold(scheme, "http"):
	default:
		b = append(b, ':')
		b = append(b, port...)
	}
	return b
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// appendQueryParam appends the value of "@query-param";name=name for the
// query (without "?"), RFC 9421 §2.2.8: the query is parsed as
// application/x-www-form-urlencoded (WHATWG URL §5.1), each name and
// value decoded and percent-encoded again (§5.2, with %20 for a space);
// the parameter whose encoded name is name must occur exactly once.
func appendQueryParam(b []byte, query, name string) ([]byte, error) {
	var (
		scratch [256]byte
		value   string
		found   bool
	)
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		enc, ok := appendFormReencoded(scratch[:0], k)
		if !ok || string(enc) != name {
			continue
		}
		if found {
			return nil, errors.New(`"@query-param": parameter occurs more than once`)
		}
		value, found = v, true
	}
	if !found {
		return nil, errors.New(`"@query-param": parameter is absent`)
	}
	b, ok := appendFormReencoded(b, value)
	if !ok {
		return nil, errors.New(`"@query-param": value is not UTF-8`)
	}
	return b, nil
}

// appendFormReencoded decodes s as a form-urlencoded name or value ("+"
// is a space, "%XX" a byte, any other "%" itself) and appends it
// percent-encoded again with the application/x-www-form-urlencoded
// percent-encode set: everything but ASCII alphanumerics and "*-._" is
// encoded, a space as %20. ok is false when the decoded bytes are not
// UTF-8 (WHATWG would substitute U+FFFD; keygate refuses instead).
func appendFormReencoded(b []byte, s string) ([]byte, bool) {
	const hexUpper = "0123456789ABCDEF"
	start := len(b)
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(s) && formHex(s[i+1]) >= 0 && formHex(s[i+2]) >= 0:
			c = byte(formHex(s[i+1])<<4 | formHex(s[i+2]))
			i += 2
		}
		if c >= 0x80 {
			ascii = false
		}
		if sfIsAlpha(c) || sfIsDigit(c) || c == '*' || c == '-' || c == '.' || c == '_' {
			b = append(b, c)
		} else {
			b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	if !ascii && !formEncodedUTF8(b[start:]) {
		return b[:start], false
	}
	return b, true
}

// formEncodedUTF8 reports whether the bytes that enc (percent-encoded by
// appendFormReencoded) stands for are valid UTF-8.
func formEncodedUTF8(enc []byte) bool {
	var buf [4]byte
	n := 0 // bytes of the current sequence in buf
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if c == '%' {
			c = byte(formHex(enc[i+1])<<4 | formHex(enc[i+2]))
			i += 2
		}
		if n == 0 && c < 0x80 {
			continue
		}
		buf[n] = c
		n++
		if utf8.FullRune(buf[:n]) {
			if r, size := utf8.DecodeRune(buf[:n]); r == utf8.RuneError && size <= 1 {
				return false
			}
			n = 0
		}
	}
	return n == 0
}

func formHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// VerifyHMACSHA256 reports whether sig is HMAC-SHA256(secret, base),
// comparing with hmac.Equal.
func VerifyHMACSHA256(secret, base, sig []byte) bool {
	return macMatches(hmac.New(sha256.New, secret), base, sig)
}

// macMatches reports whether sig is the MAC of base under m (a fresh or
// reset HMAC-SHA256), comparing with hmac.Equal.
func macMatches(m hash.Hash, base, sig []byte) bool {
	if len(sig) != sha256.Size {
		return false
	}
	m.Write(base)
	var sum [sha256.Size]byte
	return hmac.Equal(m.Sum(sum[:0]), sig)
}

// SignRFC9421 signs m for clients and tests (keygate sign) with label
// "sig1" and alg="hmac-sha256". It covers @method, @authority, @path,
// @query when m.Path has a query, and content-digest (the sha-256 of
// body, RFC 9530) when body is not empty; the parameters are created,
// keyid, alg and, when not empty, nonce. It returns the header fields to
// send: "content-digest" (with a body), "signature-input" and
// "signature".
func SignRFC9421(m *HTTPMessage, body []byte, keyID string, secret []byte, created time.Time, nonce string) (map[string]string, error) {
	switch {
	case keyID == "" || !sfValidString(keyID):
		return nil, errors.New("sign: key ID must be printable ASCII")
	case !sfValidString(nonce):
		return nil, errors.New("sign: nonce must be printable ASCII")
	case len(secret) == 0:
		return nil, errors.New("sign: empty secret")
	case created.Unix() < 0:
		return nil, errors.New("sign: created before 1970")
	}
	p := SigParams{
		Label:      "sig1",
		Components: []SigComponent{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}},
		Created:    created.Unix(),
		HasCreated: true,
		KeyID:      keyID,
		Alg:        AlgHMACSHA256,
		Nonce:      nonce,
		HasNonce:   nonce != "",
	}
	if strings.IndexByte(m.Path, '?') >= 0 {
		p.Components = append(p.Components, SigComponent{Name: "@query"})
	}
	out := make(map[string]string, 3)
	msg := *m
	if len(body) > 0 {
		cd := ContentDigestSHA256(body)
		out["content-digest"] = cd
		header := m.Header
		msg.Header = func(name string) []string {
			if name == "content-digest" {
				return []string{cd}
			}
			if header == nil {
				return nil
			}
			return header(name)
		}
		p.Components = append(p.Components, SigComponent{Name: "content-digest"})
	}
	sp, err := p.signatureParams()
	if err != nil {
		return nil, err
	}
	p.raw = sp
	base, err := SignatureBase(&msg, &p)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(base)
	out["signature-input"] = p.Label + "=" + sp
	out["signature"] = p.Label + "=:" + base64.StdEncoding.EncodeToString(mac.Sum(nil)) + ":"
	return out, nil
}

// The legacy scheme (SchemeTimestampBody): X-Signature is the hex
// HMAC-SHA256 of "<X-Timestamp>.<body>". It signs neither the method nor
// the path nor the host (THREATS.md); it exists for clients that cannot
// move to RFC 9421 yet.

// maxLegacyTimestampDigits bounds X-Timestamp (12 digits reach the
// year 33658).
const maxLegacyTimestampDigits = 12

// LegacyTimestamp parses an X-Timestamp: decimal Unix seconds with no
// sign, no leading zero, no fraction and at most 12 digits (SPEC §7).
func LegacyTimestamp(s string) (int64, bool) {
	if s == "" || len(s) > maxLegacyTimestampDigits || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !sfIsDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// legacyMAC returns HMAC-SHA256(secret, ts + "." + body).
func legacyMAC(secret []byte, ts string, body []byte, sum *[sha256.Size]byte) {
	legacySum(hmac.New(sha256.New, secret), ts, body, sum)
}

// legacySum writes "<ts>.<body>" to m (a fresh or reset HMAC-SHA256) and
// puts its MAC in sum.
func legacySum(mac hash.Hash, ts string, body []byte, sum *[sha256.Size]byte) {
	var pre [maxLegacyTimestampDigits + 1]byte
	if len(ts) <= maxLegacyTimestampDigits {
		n := copy(pre[:], ts)
		pre[n] = '.'
		mac.Write(pre[:n+1])
	} else {
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
	}
	mac.Write(body)
	mac.Sum(sum[:0])
}

// LegacySign returns the lower-case hex HMAC-SHA256 of "<ts>.<body>":
// what Python's hmac.new(secret, f"{ts}.{body}".encode(),
// hashlib.sha256).hexdigest() gives.
func LegacySign(secret []byte, ts string, body []byte) string {
	var sum [sha256.Size]byte
	legacyMAC(secret, ts, body, &sum)
	return hex.EncodeToString(sum[:])
}

// VerifyLegacy reports whether sig, 64 hex digits in either case, is
// the HMAC-SHA256 of "<ts>.<body>", comparing with hmac.Equal.
func VerifyLegacy(secret []byte, ts string, body []byte, sig string) bool {
	return legacyMatches(hmac.New(sha256.New, secret), ts, body, sig)
}

// legacyMatches reports whether the hex signature sig is the MAC of
// "<ts>.<body>" under m (a fresh or reset HMAC-SHA256); constant-time.
func legacyMatches(m hash.Hash, ts string, body []byte, sig string) bool {
	if len(sig) != 2*sha256.Size {
		return false
	}
	var got, want [sha256.Size]byte
	for i := range got {
		hi, lo := formHex(sig[2*i]), formHex(sig[2*i+1])
		if hi < 0 || lo < 0 {
			return false
		}
		got[i] = byte(hi<<4 | lo)
	}
	legacySum(m, ts, body, &want)
	return hmac.Equal(got[:], want[:])
}
