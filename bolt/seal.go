package bolt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Encryption at rest of recoverable secrets (the secrets of issuers' oct
// JWKs and of HMAC keys), and the master key check. RotateMasterKey
// (rotate.go) re-seals them under another key.
//
// A sealed secret is nonce (12 random bytes) || AES-256-GCM ciphertext
// and tag. The associated data names the record and the place in it that
// the secret belongs to, so a ciphertext copied into another record (or
// another place of the same record with another name) fails to open.

// MasterKeySize is the size of Options.MasterKey: an AES-256 key.
const MasterKeySize = 32

// Errors of Open about the master key. Open wraps them with the path of
// the store; test them with errors.Is.
var (
	// ErrMasterKeyRequired: the store holds encrypted secrets and
	// Options.MasterKey is nil.
	ErrMasterKeyRequired = errors.New("a master key is required (--master-key-file)")
	// ErrWrongMasterKey: Options.MasterKey is not the key the store's
	// secrets were encrypted with.
	ErrWrongMasterKey = errors.New("the master key does not match the one its secrets were encrypted with")
)

// masterKeyCheckInput is the message of the meta value "master_key_check"
// (HMAC-SHA256 under the master key), which tells a wrong key at Open
// without decrypting anything.
const masterKeyCheckInput = "keygate master key check v1"

// sealer seals and opens secrets under the master key. A nil *sealer
// means the store has no master key.
type sealer struct {
	aead  cipher.AEAD
	check []byte // HMAC-SHA256(key, masterKeyCheckInput)
}

// newSealer returns the sealer of key, which must be MasterKeySize bytes;
// a nil or empty key returns nil (no master key). The key is not kept:
// the cipher holds its expansion.
func newSealer(key []byte) (*sealer, error) {
	if len(key) == 0 {
		return nil, nil
	}
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("the master key must be %d bytes (AES-256), not %d", MasterKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(masterKeyCheckInput))
	return &sealer{aead: aead, check: mac.Sum(nil)}, nil
}

// checks reports whether check is the master key check value of s's key.
func (s *sealer) checks(check []byte) bool {
	return hmac.Equal(s.check, check)
}

// seal encrypts plaintext bound to ad and returns nonce || ciphertext.
func (s *sealer) seal(plaintext, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("random nonce: %w", err)
	}
	return s.aead.Seal(out, out[:ns], plaintext, ad), nil
}

// errUnseal is the error of open; it says nothing about the secret.
var errUnseal = errors.New("does not decrypt with the master key (altered, or moved from another record)")

// open decrypts sealed (as returned by seal with the same ad). It fails
// when sealed was altered, sealed under another key, or bound to other
// associated data.
func (s *sealer) open(sealed, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns+s.aead.Overhead() {
		return nil, errUnseal
	}
	plain, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return nil, errUnseal
	}
	return plain, nil
}

// openSecret opens sealed (bound to ad) with seal. It returns
// ErrMasterKeyRequired when seal is nil; when the secret does not open or
// is empty, an error that starts with what (which names the record and the
// secret in it, never the secret).
func openSecret(seal *sealer, sealed, ad []byte, what string) ([]byte, error) {
	if seal == nil {
		return nil, ErrMasterKeyRequired
	}
	plain, err := seal.open(sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("%s %v", what, err)
	}
	if len(plain) == 0 {
		return nil, fmt.Errorf("%s is empty", what)
	}
	return plain, nil
}

// issuerKeyAD is the associated data of the secret of the oct key kid of
// issuer id ("tenant/name").
func issuerKeyAD(id, kid string) []byte {
	return []byte("keygate/v1/issuer-jwk\x00" + id + "\x00" + kid)
}

// hmacKeyAD is the associated data of the secret of HMAC key id.
func hmacKeyAD(id string) []byte {
	return []byte("keygate/v1/hmac-key\x00" + id)
}
