package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

func TestMasterKeyFormats(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{' ', 0x01, '\n', 0xff}, 8) // 32 bytes, "spaces" included
	cases := map[string]struct {
		content []byte
		ok      bool
	}{
		"raw":           {raw, true},
		"base64 + LF":   {[]byte(base64.StdEncoding.EncodeToString(raw) + "\n"), true},
		"base64url raw": {[]byte(base64.RawURLEncoding.EncodeToString(raw)), true},
		"too short":     {[]byte("c2hvcnQ="), false},
	}
	for name, c := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, c.content, 0o600)
		k, _, _, err := masterKey(&Config{MasterKeyFile: p})
		if c.ok && (err != nil || !bytes.Equal(k, raw)) {
			t.Errorf("%s: key %x, %v", name, k, err)
		}
		if !c.ok && err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// An explicit file that is missing is an error, never generated.
	if _, _, _, err := masterKey(&Config{MasterKeyFile: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing --master-key-file accepted")
	}
}

func TestAdminTokenTrimmed(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	os.WriteFile(p, []byte("  0123456789abcdef0123\n"), 0o600)
	tok, _, _, err := adminToken(&Config{AdminTokenFile: p}, func(string) string { return "" })
	if err != nil || tok != "0123456789abcdef0123" {
		t.Fatalf("token %q, %v", tok, err)
	}
	os.WriteFile(p, []byte("short\n"), 0o600)
	if _, _, _, err := adminToken(&Config{AdminTokenFile: p}, func(string) string { return "" }); err == nil {
		t.Fatal("a 5-character token was accepted")
	}
}
