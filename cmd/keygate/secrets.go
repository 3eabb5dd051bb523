package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// loadOrCreateSecret reads the secret in path as it is (callers trim a
// text secret; a raw binary key may contain "space" bytes). When the file is missing
// and create is true (the dev default location), it writes a new random
// secret there with mode 0600 and reports created=true.
func loadOrCreateSecret(path string, create bool) (secret []byte, created bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return data, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	enc := []byte(base64.RawURLEncoding.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	_, werr := f.Write(append(enc, '\n'))
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return nil, false, err
	}
	return enc, true, nil
}

// adminToken returns the admin bearer token: KEYGATE_ADMIN_TOKEN, else the
// token file (generated at the dev-default location when missing).
func adminToken(cfg *Config, env func(string) string) (token, source string, created bool, err error) {
	if t := env("KEYGATE_ADMIN_TOKEN"); t != "" {
		if len(t) < 16 {
			return "", "", false, errors.New("KEYGATE_ADMIN_TOKEN must be at least 16 characters")
		}
		return t, "KEYGATE_ADMIN_TOKEN", false, nil
	}
	path := cfg.tokenFile()
	b, created, err := loadOrCreateSecret(path, cfg.AdminTokenFile == "")
	if err != nil {
		return "", "", false, fmt.Errorf("admin token file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < 16 {
		return "", "", false, fmt.Errorf("admin token file %s: token must be at least 16 characters", path)
	}
	return string(b), path, created, nil
}

// masterKey returns the 32-byte master key from its file (raw, or standard
// or URL-safe base64), generated at the dev-default location when missing.
func masterKey(cfg *Config) (key []byte, path string, created bool, err error) {
	path = cfg.masterKeyFile()
	b, created, err := loadOrCreateSecret(path, cfg.MasterKeyFile == "")
	if err != nil {
		return nil, path, false, fmt.Errorf("master key file: %w", err)
	}
	if len(b) == 32 {
		return b, path, created, nil // raw bytes
	}
	b = bytes.TrimSpace(b)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(string(b)); err == nil && len(k) == 32 {
			return k, path, created, nil
		}
	}
	return nil, path, false, fmt.Errorf("master key file %s: want 32 bytes, raw or base64", path)
}
