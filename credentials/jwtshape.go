package credentials

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// splitJWT splits s into the three segments of a compact JWS when it has
// the shape of one: three base64url segments (no padding) joined by two
// dots, the first two non-empty (an unsecured "alg": "none" token has an
// empty signature, and must still be refused as a JWT). It allocates
// nothing.
func splitJWT(s string) (header, payload, sig string, ok bool) {
	header, rest, ok := strings.Cut(s, ".")
	if !ok || len(header) < 4 {
		return "", "", "", false
	}
	payload, sig, ok = strings.Cut(rest, ".")
	if !ok || payload == "" || strings.IndexByte(sig, '.') >= 0 {
		return "", "", "", false
	}
	for _, seg := range [3]string{header, payload, sig} {
		for i := 0; i < len(seg); i++ {
			if b := seg[i]; !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return "", "", "", false
			}
		}
	}
	return header, payload, sig, true
}

// joseHeader is what keygate reads of a JWS header before golang-jwt
// verifies the token.
type joseHeader struct {
	Alg     string
	Kid     string
	HasCrit bool // "crit" is present: keygate understands no extension
	// HasKid tells "kid": "" from no kid.
	HasKid bool
}

// parseJOSEHeader decodes a base64url header segment once: object
// reports whether it is a JSON object (what makes a bearer value a JWT,
// SPEC §7), ok whether, in addition, alg and kid, when present, are
// strings.
func parseJOSEHeader(seg string) (h joseHeader, object, ok bool) {
	if len(seg) > maxAuthHeader {
		return h, false, false
	}
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(buf, []byte(seg))
	if err != nil {
		return h, false, false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(buf[:n], &obj) != nil || obj == nil {
		return h, false, false
	}
	// json.Unmarshal of null into a string is no error: refuse it here.
	if raw, ok := obj["alg"]; ok && (string(raw) == "null" || json.Unmarshal(raw, &h.Alg) != nil) {
		return h, true, false
	}
	if raw, ok := obj["kid"]; ok {
		if string(raw) == "null" || json.Unmarshal(raw, &h.Kid) != nil {
			return h, true, false
		}
		h.HasKid = true
	}
	_, h.HasCrit = obj["crit"]
	return h, true, true
}

// decodeJOSEHeader decodes a base64url header segment. It fails unless
// the segment decodes to a JSON object; alg and kid, when present, must
// be strings.
func decodeJOSEHeader(seg string) (joseHeader, bool) {
	h, _, ok := parseJOSEHeader(seg)
	return h, ok
}

// decodesToObject reports whether the base64url segment decodes to a JSON
// object.
func decodesToObject(seg string) bool {
	_, object, _ := parseJOSEHeader(seg)
	return object
}

// bearerJWT returns the header of tok when tok is a JWT (three base64url
// segments, the first a JSON object); ok tells whether the header's alg
// and kid are well-formed. The header is decoded once for both answers.
func bearerJWT(tok string) (h joseHeader, isJWT, ok bool) {
	hseg, _, _, shaped := splitJWT(tok)
	if !shaped {
		return h, false, false
	}
	return parseJOSEHeader(hseg)
}
