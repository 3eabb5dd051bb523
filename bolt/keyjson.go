package bolt

import (
	"encoding/json"
	"time"

	"github.com/keygate/keygate/credentials"
)

// decodeKey decodes an API-key record as json.Unmarshal does. Records as
// json.Marshal writes them (no whitespace, no escapes, ASCII strings) take
// a fast path about an order of magnitude quicker, which matters when
// Open decodes a million of them; anything else, including every
// malformed record, is left to json.Unmarshal, so the result and the
// errors are json.Unmarshal's.
func decodeKey(data []byte, k *credentials.APIKey) error {
	if fastDecodeKey(data, k) {
		return nil
	}
	*k = credentials.APIKey{}
	return json.Unmarshal(data, k)
}

// fastDecodeKey decodes data into k, which is zero, and reports whether
// it could; when it could not, k holds garbage.
func fastDecodeKey(b []byte, k *credentials.APIKey) bool {
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	i := 1
	if b[i] == '}' {
		return len(b) == 2
	}
	for {
		s, e, ok := scanString(b, i)
		if !ok || e+1 >= len(b) || b[e+1] != ':' {
			return false
		}
		name := b[s:e]
		i = e + 2
		switch string(name) {
		case "id":
			k.ID, i, ok = stringValue(b, i)
		case "client_id":
			k.ClientID, i, ok = stringValue(b, i)
		case "name":
			k.Name, i, ok = stringValue(b, i)
		case "key_sha256":
			k.KeySHA256, i, ok = stringValue(b, i)
		case "key":
			k.Key, i, ok = stringValue(b, i)
		case "last_used_ip":
			k.LastUsedIP, i, ok = stringValue(b, i)
		case "disabled":
			switch {
			case hasPrefixAt(b, i, "true"):
				k.Disabled, i = true, i+4
			case hasPrefixAt(b, i, "false"):
				k.Disabled, i = false, i+5
			default:
				return false
			}
		case "created_at":
			i, ok = timeValue(b, i, &k.CreatedAt)
		case "updated_at":
			i, ok = timeValue(b, i, &k.UpdatedAt)
		case "expires_at":
			k.ExpiresAt = new(time.Time)
			i, ok = timeValue(b, i, k.ExpiresAt)
		case "last_used_at":
			k.LastUsedAt = new(time.Time)
			i, ok = timeValue(b, i, k.LastUsedAt)
		case "scopes":
			if i >= len(b) || b[i] != '[' {
				return false
			}
			i++
			k.Scopes = []string{}
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			for {
				var v string
				if v, i, ok = stringValue(b, i); !ok || i >= len(b) {
					return false
				}
				k.Scopes = append(k.Scopes, v)
				if b[i] == ']' {
					i++
					break
				}
				if b[i] != ',' {
					return false
				}
				i++
			}
		default:
			return false
		}
		if !ok || i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i+1 == len(b)
		default:
			return false
		}
	}
}

// scanString returns the bounds of the contents of the string at b[i],
// when it holds only printable ASCII without escapes.
func scanString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

func stringValue(b []byte, i int) (string, int, bool) {
	s, e, ok := scanString(b, i)
	if !ok {
		return "", 0, false
	}
	return string(b[s:e]), e + 1, true
}

func timeValue(b []byte, i int, t *time.Time) (int, bool) {
	s, e, ok := scanString(b, i)
	if !ok || t.UnmarshalText(b[s:e]) != nil {
		return 0, false
	}
	return e + 1, true
}

func hasPrefixAt(b []byte, i int, p string) bool {
	return len(b)-i >= len(p) && string(b[i:i+len(p)]) == p
}
