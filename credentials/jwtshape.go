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

// decodeJOSEHeader decodes a base64url header segment. It fails unless
// the segment decodes to a JSON object; alg and kid, when present, must
// be strings.
func decodeJOSEHeader(seg string) (h joseHeader, ok bool) {
	if len(seg) > maxAuthHeader {
		return h, false
	}
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(buf, []byte(seg))
	if err != nil {
		return h, false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(buf[:n], &obj) != nil || obj == nil {
		return h, false
	}
	// json.Unmarshal of null into a string is no error: refuse it here.
	if raw, ok := obj["alg"]; ok && (string(raw) == "null" || json.Unmarshal(raw, &h.Alg) != nil) {
		return h, false
	}
	if raw, ok := obj["kid"]; ok {
		if string(raw) == "null" || json.Unmarshal(raw, &h.Kid) != nil {
			return h, false
		}
		h.HasKid = true
	}
	_, h.HasCrit = obj["crit"]
	return h, true
}

// decodesToObject reports whether the base64url segment decodes to a JSON
// object.
func decodesToObject(seg string) bool {
	if len(seg) > maxAuthHeader {
		return false
	}
	buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(buf, []byte(seg))
	if err != nil {
		return false
	}
	var obj map[string]json.RawMessage
	return json.Unmarshal(buf[:n], &obj) == nil && obj != nil
}
