package credentials

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// keyFamily is the kind of key an algorithm verifies with.
type keyFamily uint8

const (
	famNone keyFamily = iota
	famOct
	famRSA
	famP256
	famP384
	famP521
	famEd25519
)

func (f keyFamily) String() string {
	return [...]string{"unknown", "oct", "RSA", "EC P-256", "EC P-384", "EC P-521", "Ed25519"}[f]
}

// Minimum key sizes: RFC 7518 §3.3 (RSA ≥ 2048 bits) and §3.2 (an HMAC
// key at least as long as the hash; keygate asks 32 bytes for all HS*).
const (
	minRSABits  = 2048
	minOctBytes = 32
)

// verifyKey is a parsed JWK.
type verifyKey struct {
	kid    string
	alg    string // "" when the JWK does not name one
	family keyFamily
	key    any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether k may verify a token signed with alg.
func (k *verifyKey) fits(alg string) bool {
	return algFamilies[alg] == k.family && (k.alg == "" || k.alg == alg)
}

func (k *verifyKey) fitsAny(algs []string) bool {
	for _, a := range algs {
		if k.fits(a) {
			return true
		}
	}
	return false
}

// parseJWK parses a public (or oct) JWK into a key golang-jwt verifies
// with. Points are checked to be on their curve.
func parseJWK(j *JWK) (*verifyKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, fmt.Errorf("use %q: only signature keys (\"sig\") verify tokens", j.Use)
	}
	if j.Alg != "" {
		if _, ok := algFamilies[j.Alg]; !ok {
			return nil, fmt.Errorf("alg %q is not supported", j.Alg)
		}
	}
	k := &verifyKey{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		n, err1 := b64Int(j.N)
		e, err2 := b64Int(j.E)
		if err1 != nil || err2 != nil {
			return nil, errors.New("RSA key: n and e must be base64url big-endian integers")
		}
		if n.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at least %d are required", n.BitLen(), minRSABits)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, errors.New("RSA key: e must be an odd integer between 3 and 2^31-1")
		}
		k.family, k.key = famRSA, &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve, k.family = elliptic.P256(), famP256
		case "P-384":
			curve, k.family = elliptic.P384(), famP384
		case "P-521":
			curve, k.family = elliptic.P521(), famP521
		default:
			return nil, fmt.Errorf("EC key: crv %q is not P-256, P-384 or P-521", j.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := b64Fixed(j.X, size)
		y, err2 := b64Fixed(j.Y, size)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("EC key: x and y must be base64url of %d bytes", size)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("EC key: the point is not on the curve")
		}
		k.key = pub
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("OKP key: crv %q is not Ed25519", j.Crv)
		}
		x, err := b64Fixed(j.X, ed25519.PublicKeySize)
		if err != nil {
			return nil, errors.New("OKP key: x must be base64url of 32 bytes")
		}
		k.family, k.key = famEd25519, ed25519.PublicKey(x)
	case "oct":
		secret, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(j.K, "="))
		if err != nil {
			return nil, errors.New("oct key: k must be base64url")
		}
		if len(secret) < minOctBytes {
			return nil, fmt.Errorf("oct key of %d bytes: at least %d are required (RFC 7518 §3.2)", len(secret), minOctBytes)
		}
		k.family, k.key = famOct, secret
	case "":
		return nil, errors.New("kty is required")
	default:
		return nil, fmt.Errorf("kty %q is not RSA, EC, OKP or oct", j.Kty)
	}
	if j.Alg != "" && algFamilies[j.Alg] != k.family {
		// Such a key would verify nothing: refuse it rather than keep a
		// key that only looks usable.
		return nil, fmt.Errorf("alg %s does not fit a %s key", j.Alg, k.family)
	}
	return k, nil
}

func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad integer")
	}
	return new(big.Int).SetBytes(b), nil
}

func b64Fixed(s string, n int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) != n {
		return nil, errors.New("bad length")
	}
	return b, nil
}

// KeySet is a parsed, immutable JWKS.
type KeySet struct {
	keys []*verifyKey
}

// Len returns the number of usable keys.
func (ks *KeySet) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.keys)
}

// Kids returns the key IDs of the set, in order ("" for keys without one).
func (ks *KeySet) Kids() []string {
	if ks == nil {
		return nil
	}
	var out []string
	for _, k := range ks.keys {
		out = append(out, k.kid)
	}
	return out
}

// maxKeysWithoutKid bounds the keys a token without kid is tried against.
const maxKeysWithoutKid = 4

// candidates returns the keys of ks that may verify a token with alg and
// kid: the keys with that kid, or (no kid) the keys of the algorithm's
// family; at most maxKeysWithoutKid either way, so no token costs more
// than four signature checks.
func (ks *KeySet) candidates(alg, kid string, out []any) []any {
	if ks == nil {
		return out
	}
	for _, k := range ks.keys {
		if kid != "" && k.kid != kid || !k.fits(alg) {
			continue
		}
		out = append(out, k.key)
		if len(out) == maxKeysWithoutKid { // also bounds a JWKS full of one kid
			break
		}
	}
	return out
}

// hasKid reports whether ks has a key with kid.
func (ks *KeySet) hasKid(kid string) bool {
	if ks == nil {
		return false
	}
	for _, k := range ks.keys {
		if k.kid == kid {
			return true
		}
	}
	return false
}

// NewKeySet parses inline keys; any key that does not parse is an error.
func NewKeySet(jwks *JWKS) (*KeySet, error) {
	ks := &KeySet{}
	if jwks == nil {
		return ks, nil
	}
	for i := range jwks.Keys {
		k, err := parseJWK(&jwks.Keys[i])
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		ks.keys = append(ks.keys, k)
	}
	return ks, nil
}

// MaxJWKSBytes bounds a JWKS document keygate parses.
const MaxJWKSBytes = 1 << 20

// ParseJWKS parses a JWKS document as served at a jwks_uri. Keys keygate
// cannot use (encryption keys, unknown types, weak keys) are skipped and
// reported in skipped; a document that is not a JWKS, or that has no
// usable key, is an error.
func ParseJWKS(data []byte) (ks *KeySet, skipped []string, err error) {
	if len(data) > MaxJWKSBytes {
		return nil, nil, fmt.Errorf("JWKS of %d bytes is over the %d-byte limit", len(data), MaxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JWKS: %v", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New("not a JWKS: no \"keys\" array")
	}
	ks = &KeySet{}
	for i, raw := range doc.Keys {
		var j JWK
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		if j.Kty == "oct" {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: oct keys are never taken from a URL", i))
			continue
		}
		k, err := parseJWK(&j)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): %v", i, clipString(j.Kid, 64), err))
			continue
		}
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		return nil, skipped, errors.New("the JWKS has no usable signature key")
	}
	return ks, skipped, nil
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
