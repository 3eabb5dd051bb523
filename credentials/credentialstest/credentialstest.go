// Package credentialstest holds test helpers that several packages share.
// It imports only the standard library.
package credentialstest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sync"
)

// DjangoKey returns a key as Python's secrets.token_urlsafe(32) makes them
// (and so as Django projects and many others do): 32 random bytes,
// base64url-encoded without padding, 43 characters.
func DjangoKey() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SHA256Hex returns the lower-case hex SHA-256 of s, as Python's
// hashlib.sha256(s.encode()).hexdigest() and the key_sha256 field do.
func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// LogBuffer collects what a logger (a zapcore.WriteSyncer) or a child
// process writes; it is safe for concurrent writers and readers.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Sync does nothing; it makes LogBuffer a zapcore.WriteSyncer.
func (b *LogBuffer) Sync() error { return nil }

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
