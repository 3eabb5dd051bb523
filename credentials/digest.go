package credentials

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// RFC 9530 Content-Digest: a Dictionary of hashing algorithm → Byte
// Sequence, checked against the request body when a signature covers
// it (SPEC §3).

// MaxContentDigestLen bounds a Content-Digest field value.
const MaxContentDigestLen = 8 << 10

// Content-Digest errors; CheckContentDigest wraps them with the detail.
var (
	// ErrContentDigestMismatch: a supported digest differs from the body's.
	ErrContentDigestMismatch = errors.New("content-digest does not match the body")
	// ErrContentDigestUnsupported: no sha-256 or sha-512 digest to check.
	ErrContentDigestUnsupported = errors.New("content-digest has no sha-256 or sha-512 digest")
	// ErrContentDigestMalformed: the field is not a valid Content-Digest.
	ErrContentDigestMalformed = errors.New("malformed content-digest")
)

var digestOptions = sfOptions{
	noDupKeys:  true, // "sha-256=:bad:, sha-256=:good:" is refused, not last-wins
	maxMembers: 16,
	maxParams:  16,
}

// CheckContentDigest verifies an RFC 9530 Content-Digest field value
// against body. The sha-256 and sha-512 digests are checked (in constant
// time); other algorithms are ignored. At least one of the two must be
// present and every one present must match. An algorithm given twice is
// refused. The errors wrap ErrContentDigestMismatch,
// ErrContentDigestUnsupported or ErrContentDigestMalformed and say which
// algorithm.
func CheckContentDigest(field string, body []byte) error {
	if len(field) > MaxContentDigestLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrContentDigestMalformed, MaxContentDigestLen)
	}
	ms, err := sfParseDictionary(field, digestOptions)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrContentDigestMalformed, err)
	}
	checked := 0
	for i := range ms {
		m := &ms[i]
		if m.key != "sha-256" && m.key != "sha-512" {
			continue
		}
		if m.inner || m.item.bare.typ != sfBytes {
			return fmt.Errorf("%w: %s is not a byte sequence", ErrContentDigestMalformed, m.key)
		}
		var sum []byte
		if m.key == "sha-256" {
			s := sha256.Sum256(body)
			sum = s[:]
		} else {
			s := sha512.Sum512(body)
			sum = s[:]
		}
		if subtle.ConstantTimeCompare(sum, m.item.bare.bin) != 1 {
			return fmt.Errorf("%w: %s", ErrContentDigestMismatch, m.key)
		}
		checked++
	}
	if checked == 0 {
		return ErrContentDigestUnsupported
	}
	return nil
}

// ContentDigestSHA256 returns the Content-Digest field value for body
// with its SHA-256: "sha-256=:<base64>:".
func ContentDigestSHA256(body []byte) string {
	sum := sha256.Sum256(body)
	b := make([]byte, 0, len("sha-256=::")+base64.StdEncoding.EncodedLen(len(sum)))
	b = append(b, "sha-256=:"...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	return string(append(b, ':'))
}
