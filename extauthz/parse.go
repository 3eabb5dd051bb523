package extauthz

import (
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// headers holds the request headers Check reads. Values are as Envoy
// sends them: repeated headers joined by ",", cookies by "; ".
type headers struct {
	authorization, apiKey, cookie                    string
	hasAuthorization, hasAPIKey, hasCookie           bool
	path, method, authority, requestID, forwardedFor string
	signature                                        bool
}

// read fills h from hr: from header_map when Envoy sends it (it wins over
// headers), otherwise from the lower-case headers map; pseudo-headers
// missing from both fall back to the typed fields of hr.
func (h *headers) read(hr *authv3.AttributeContext_HttpRequest) {
	if hm := hr.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		h.readList(hm.GetHeaders())
	} else if m := hr.GetHeaders(); len(m) > 0 {
		h.authorization, h.hasAuthorization = m["authorization"]
		h.apiKey, h.hasAPIKey = m["x-api-key"]
		h.cookie, h.hasCookie = m["cookie"]
		h.path = m[":path"]
		h.method = m[":method"]
		h.authority = m[":authority"]
		h.requestID = m["x-request-id"]
		h.forwardedFor = m["x-forwarded-for"]
		_, sig := m["signature"]
		_, sigInput := m["signature-input"]
		_, xsig := m["x-signature"]
		h.signature = sig || sigInput || xsig
	}
	if hr == nil {
		return
	}
	if h.path == "" {
		h.path = hr.GetPath()
	}
	if h.method == "" {
		h.method = hr.GetMethod()
	}
	if h.authority == "" {
		h.authority = hr.GetHost()
	}
	if h.requestID == "" {
		h.requestID = hr.GetId()
	}
}

// readList fills h from header_map entries, joining repeated names the way
// Envoy does.
func (h *headers) readList(list []*corev3.HeaderValue) {
	var hasPath, hasMethod, hasAuthority, hasID, hasXFF bool
	for _, hv := range list {
		name := hv.GetKey()
		if len(name) < 5 || len(name) > 15 {
			continue // not a name Check reads: skip without comparing
		}
		switch {
		case strings.EqualFold(name, "authorization"):
			joinInto(&h.authorization, &h.hasAuthorization, headerValue(hv), ",")
		case strings.EqualFold(name, "x-api-key"):
			joinInto(&h.apiKey, &h.hasAPIKey, headerValue(hv), ",")
		case strings.EqualFold(name, "cookie"):
			joinInto(&h.cookie, &h.hasCookie, headerValue(hv), "; ")
		case strings.EqualFold(name, ":path"):
			joinInto(&h.path, &hasPath, headerValue(hv), ",")
		case strings.EqualFold(name, ":method"):
			joinInto(&h.method, &hasMethod, headerValue(hv), ",")
		case strings.EqualFold(name, ":authority"):
			joinInto(&h.authority, &hasAuthority, headerValue(hv), ",")
		case strings.EqualFold(name, "x-request-id"):
			joinInto(&h.requestID, &hasID, headerValue(hv), ",")
		case strings.EqualFold(name, "x-forwarded-for"):
			joinInto(&h.forwardedFor, &hasXFF, headerValue(hv), ",")
		case strings.EqualFold(name, "signature"), strings.EqualFold(name, "signature-input"),
			strings.EqualFold(name, "x-signature"):
			h.signature = true
		}
	}
}

// headerValue returns the value of hv: raw_value when set, else value.
func headerValue(hv *corev3.HeaderValue) string {
	if len(hv.GetRawValue()) > 0 {
		return string(hv.GetRawValue())
	}
	return hv.GetValue()
}

// joinInto appends v to *dst, separated by sep when *dst was already set.
func joinInto(dst *string, has *bool, v, sep string) {
	if *has {
		*dst = *dst + sep + v
		return
	}
	*dst, *has = v, true
}

// queryParam returns the value of the query parameter name in path (the
// request target, "/p?a=1&b=2#frag"), percent-decoded, and how many times
// the parameter occurs. Names are compared after percent-decoding (as
// Envoy does when it removes parameters). bad reports a value whose
// percent-encoding is malformed. '+' is kept as is: keys never contain
// spaces, and base64 keys may contain '+'.
func queryParam(path, name string) (val string, n int, bad bool) {
	i := strings.IndexAny(path, "?#")
	if i < 0 || path[i] == '#' {
		return "", 0, false
	}
	q := path[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for seg := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(seg, "=")
		if k != name {
			if strings.IndexByte(k, '%') < 0 {
				continue
			}
			if dk, ok := unescape(k); !ok || dk != name {
				continue
			}
		}
		n++
		if n == 1 {
			var ok bool
			val, ok = unescape(v)
			bad = !ok
		}
	}
	if bad {
		val = ""
	}
	return val, n, bad
}

// literalParam reports whether the query of path has a parameter whose
// name is exactly name as written (not percent-encoded).
func literalParam(path, name string) bool {
	i := strings.IndexAny(path, "?#")
	if i < 0 || path[i] == '#' {
		return false
	}
	q := path[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for seg := range strings.SplitSeq(q, "&") {
		if k, _, _ := strings.Cut(seg, "="); k == name {
			return true
		}
	}
	return false
}

// unescape percent-decodes s. It allocates only when s holds a '%'.
func unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// cookieValue returns the value of the cookie name in the Cookie header h
// ("a=1; b=2"; surrounding double quotes removed) and how many times it
// occurs. Names are case-sensitive.
func cookieValue(h, name string) (val string, n int) {
	for pair := range strings.SplitSeq(h, ";") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || trimOWS(k) != name {
			continue
		}
		n++
		if n == 1 {
			val = trimOWS(v)
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
		}
	}
	return val, n
}

// withoutCookie returns the Cookie header h without the cookies named
// name, the other pairs joined by "; "; "" when none remain.
func withoutCookie(h, name string) string {
	var b strings.Builder
	for pair := range strings.SplitSeq(h, ";") {
		pair = trimOWS(pair)
		if pair == "" {
			continue
		}
		if k, _, ok := strings.Cut(pair, "="); ok && trimOWS(k) == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(pair)
	}
	return b.String()
}

// trimOWS trims HTTP optional whitespace (spaces and tabs).
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// forwardedFor returns the address hops entries from the right of the
// X-Forwarded-For value h (hops ≥ 1; 1 is the rightmost entry, written by
// the nearest trusted proxy). ok is false when h has fewer entries or the
// entry is not an IP address (with or without a port).
func forwardedFor(h string, hops int) (addr netip.Addr, ok bool) {
	if hops < 1 {
		return netip.Addr{}, false
	}
	for i := 1; ; i++ {
		entry := h
		j := strings.LastIndexByte(h, ',')
		if j >= 0 {
			entry, h = h[j+1:], h[:j]
		}
		if i == hops {
			return parseIP(trimOWS(entry))
		}
		if j < 0 {
			return netip.Addr{}, false
		}
	}
}

// parseIP parses an address as found in X-Forwarded-For or Envoy's
// socket address: "10.0.0.1", "::1", "[::1]", "10.0.0.1:8080", "[::1]:8080".
func parseIP(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// stripQuery returns the request target without its query and fragment.
func stripQuery(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		return path[:i]
	}
	return path
}

// keygateAuthorization reports whether an Authorization value uses a
// scheme keygate consumes (ApiKey, Token, Bearer; case-insensitive,
// followed by a space), as credentials.Checker parses it.
func keygateAuthorization(v string) bool {
	scheme, _, ok := strings.Cut(v, " ")
	return ok && (strings.EqualFold(scheme, "ApiKey") || strings.EqualFold(scheme, "Token") ||
		strings.EqualFold(scheme, "Bearer"))
}
