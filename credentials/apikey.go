package credentials

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
)

// Generated API keys are "kg_" + 40 base62 characters + the CRC32 (IEEE) of
// those 40 characters in base62, left-padded with '0' to 6 characters.
const (
	KeyPrefix     = "kg_"
	keyBodyLen    = 40
	keyCheckLen   = 6
	GeneratedLen  = len(KeyPrefix) + keyBodyLen + keyCheckLen // 49
	MinImportLen  = 16
	MaxKeyLen     = 512
	base62Digits  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	maxAuthHeader = 8 << 10
)

// Key format errors. They are never shown to callers (who see
// invalid_api_key); they name the reason in the decision log.
var (
	ErrKeyChecksum = errors.New("malformed API key: bad checksum")
	ErrKeyFormat   = errors.New("malformed API key")
)

// GenerateAPIKey returns a new random key in keygate's format (238 bits of
// entropy from crypto/rand).
func GenerateAPIKey() string {
	var b [GeneratedLen]byte
	copy(b[:], KeyPrefix)
	body := b[len(KeyPrefix) : len(KeyPrefix)+keyBodyLen]
	randomBase62(body)
	putChecksum(b[len(KeyPrefix)+keyBodyLen:], body)
	return string(b[:])
}

// randomBase62 fills dst with uniformly random base62 digits (rejection
// sampling, so no modulo bias).
func randomBase62(dst []byte) {
	var buf [64]byte
	i := 0
	for i < len(dst) {
		rand.Read(buf[:])
		for _, c := range buf {
			if c >= 248 { // 248 = 4*62: keep the distribution uniform
				continue
			}
			dst[i] = base62Digits[c%62]
			i++
			if i == len(dst) {
				break
			}
		}
	}
}

func putChecksum(dst, body []byte) {
	v := crc32.ChecksumIEEE(body)
	for i := keyCheckLen - 1; i >= 0; i-- {
		dst[i] = base62Digits[v%62]
		v /= 62
	}
}

// crc32IEEE is crc32.ChecksumIEEE of a string without the []byte
// conversion, which escapes (through crc32's dispatch) and so allocated on
// every Check.
func crc32IEEE(s string) uint32 {
	tab := crc32.IEEETable
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = tab[byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}

var base62Value = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base62Digits); i++ {
		t[base62Digits[i]] = int8(i)
	}
	return t
}()

// CheckKeyFormat reports whether key may be an API key, without a store
// lookup: keys starting with "kg_" must be well-formed generated keys
// (length, alphabet, checksum); other (imported) keys must be 16-512
// visible ASCII characters without ',' (Envoy joins repeated headers with
// commas), quotes, backslashes or ';'.
func CheckKeyFormat(key string) error {
	if len(key) >= len(KeyPrefix) && key[:len(KeyPrefix)] == KeyPrefix {
		if len(key) != GeneratedLen {
			return ErrKeyFormat
		}
		body := key[len(KeyPrefix) : len(KeyPrefix)+keyBodyLen]
		for i := 0; i < len(body); i++ {
			if base62Value[body[i]] < 0 {
				return ErrKeyFormat
			}
		}
		v := crc32IEEE(body)
		check := key[len(KeyPrefix)+keyBodyLen:]
		for i := keyCheckLen - 1; i >= 0; i-- {
			if check[i] != base62Digits[v%62] {
				return ErrKeyChecksum
			}
			v /= 62
		}
		return nil
	}
	if len(key) < MinImportLen || len(key) > MaxKeyLen {
		return ErrKeyFormat
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c <= ' ' || c >= 0x7f || c == ',' || c == '"' || c == '\\' || c == ';' {
			return ErrKeyFormat
		}
	}
	return nil
}

// CheckImportableKey is CheckKeyFormat for keys given to the admin API.
func CheckImportableKey(key string) error {
	if err := CheckKeyFormat(key); err != nil {
		return errors.New("API keys are 16-512 visible ASCII characters without , ; \" or \\ (or a valid kg_ key)")
	}
	return nil
}

// HashKey returns the SHA-256 digest of key, as stored.
func HashKey(key string) [32]byte {
	var buf [MaxKeyLen]byte
	if len(key) <= len(buf) {
		n := copy(buf[:], key)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(key))
}
