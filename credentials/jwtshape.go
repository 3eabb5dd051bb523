package credentials

import (
	"encoding/base64"
	"encoding/json"
)

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
