package extauthz

import (
	"strconv"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/credentials"
)

// signedRequest returns what an HMAC signature of hr is checked against:
// the request line, every header field (by lower-case name, in order),
// the signature fields and the body Envoy forwarded (raw_body when
// with_request_body has pack_as_bytes, else body). It is built only for
// requests that carry signature headers.
func signedRequest(hr *authv3.AttributeContext_HttpRequest, h *headers) *credentials.SignedRequest {
	get := headerLookup(hr)
	scheme := strings.ToLower(hr.GetScheme())
	if v := get(":scheme"); scheme == "" && len(v) == 1 {
		scheme = strings.ToLower(v[0])
	}
	s := signedFields(get, h, scheme)
	if rb := hr.GetRawBody(); len(rb) > 0 {
		s.Body = rb
	} else if b := hr.GetBody(); b != "" {
		s.Body = []byte(b)
	}
	return s
}

// signedFields returns the parts of a signed request that both transports
// read from header fields: the request line, the header lookup, the
// signature fields, Envoy's partial-body mark and the body's framing
// (Content-Length, Transfer-Encoding). The caller sets the body.
func signedFields(get func(name string) []string, h *headers, scheme string) *credentials.SignedRequest {
	s := &credentials.SignedRequest{ContentLength: -1}
	s.Message = credentials.HTTPMessage{Method: h.method, Authority: h.authority, Path: h.path, Header: get, Scheme: scheme}
	one := func(name string) (string, bool) {
		v := get(name)
		return strings.Join(v, ", "), len(v) > 0
	}
	s.SignatureInput, s.HasSignatureInput = one("signature-input")
	s.Signature, s.HasSignature = one("signature")
	s.LegacySignature, s.HasLegacySignature = one("x-signature")
	s.LegacyTimestamp, _ = one("x-timestamp")
	s.LegacyTenant, _ = one("x-tenant-id")
	if v, ok := one("x-envoy-auth-partial-body"); ok && strings.EqualFold(v, "true") {
		s.BodyPartial = true
	}
	if v, ok := one("content-length"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			s.Chunked = true // a body of unknown size: never "no body"
		} else {
			s.ContentLength = n
		}
	}
	if _, ok := one("transfer-encoding"); ok {
		s.Chunked = true
	}
	return s
}

// headerLookup returns the field values of hr by lower-case name: each
// header_map entry separately (Envoy sends it when configured with
// encode_raw_headers), or the one comma-joined value of the headers map.
func headerLookup(hr *authv3.AttributeContext_HttpRequest) func(name string) []string {
	if list := hr.GetHeaderMap().GetHeaders(); len(list) > 0 {
		return func(name string) []string {
			var out []string
			for _, hv := range list {
				if strings.EqualFold(hv.GetKey(), name) {
					out = append(out, headerValue(hv))
				}
			}
			return out
		}
	}
	m := hr.GetHeaders()
	return func(name string) []string {
		if v, ok := m[name]; ok {
			return []string{v}
		}
		return nil
	}
}

// redactBase masks, in a signature base for the debug log, the values of
// covered fields that hold credentials.
func redactBase(base string) string {
	lines := strings.Split(base, "\n")
	for i, l := range lines {
		name, _, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		switch strings.Trim(strings.SplitN(name, ";", 2)[0], `"`) {
		case "authorization", "proxy-authorization", "cookie", "x-api-key", "signature", "x-signature":
			lines[i] = name + ": <redacted>"
		}
	}
	return strings.Join(lines, "\n")
}
