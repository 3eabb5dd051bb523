package credentials

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/credentials/credentialstest"
)

var generatedRE = regexp.MustCompile(`^kg_[0-9A-Za-z]{40}[0-9A-Za-z]{6}$`)

// base62Checksum is the checksum as SPEC §7 states it, written
// independently of putChecksum.
func base62Checksum(body string) string {
	v := crc32.ChecksumIEEE([]byte(body))
	out := ""
	for v > 0 {
		out = string(base62Digits[v%62]) + out
		v /= 62
	}
	return strings.Repeat("0", 6-len(out)) + out
}

func TestGenerateAPIKey(t *testing.T) {
	const n = 10_000
	seen := make(map[string]bool, n)
	var counts [256]int
	for range n {
		k := GenerateAPIKey()
		if len(k) != GeneratedLen || !generatedRE.MatchString(k) {
			t.Fatalf("GenerateAPIKey() = %q: not kg_ + 46 base62", k)
		}
		if want := base62Checksum(k[3:43]); k[43:] != want {
			t.Fatalf("GenerateAPIKey() = %q: checksum %s, want %s", k, k[43:], want)
		}
		if err := CheckKeyFormat(k); err != nil {
			t.Fatalf("CheckKeyFormat(GenerateAPIKey()) = %v", err)
		}
		if seen[k] {
			t.Fatalf("GenerateAPIKey() repeated %q", k)
		}
		seen[k] = true
		for i := 3; i < 43; i++ {
			counts[k[i]]++
		}
	}
	// Every digit appears, roughly uniformly (400,000 draws: ~6452 each).
	for i := 0; i < len(base62Digits); i++ {
		if c := counts[base62Digits[i]]; c < 5800 || c > 7100 {
			t.Errorf("digit %c drawn %d times of %d, want ~6452 (biased?)", base62Digits[i], c, n*40)
		}
	}
}

// TestChecksumPadding covers a body whose CRC32 needs fewer than 6 base62
// digits, so the left padding with '0' is exercised.
func TestChecksumPadding(t *testing.T) {
	body := []byte(strings.Repeat("0", 40))
	for i := 0; ; i++ {
		// Vary the body until the checksum is small.
		body[0], body[1], body[2] = base62Digits[i%62], base62Digits[i/62%62], base62Digits[i/3844%62]
		if crc32.ChecksumIEEE(body) < 62*62*62*62*62 {
			break
		}
	}
	want := base62Checksum(string(body))
	if want[0] != '0' {
		t.Fatalf("test setup: checksum %s is not padded", want)
	}
	key := KeyPrefix + string(body) + want
	if err := CheckKeyFormat(key); err != nil {
		t.Errorf("CheckKeyFormat(%q) = %v, want nil", key, err)
	}
	// The unpadded form is not accepted.
	if err := CheckKeyFormat(KeyPrefix + string(body) + want[1:] + "0"); err == nil {
		t.Errorf("checksum padded on the right accepted")
	}
}

func TestCheckKeyFormat(t *testing.T) {
	good := GenerateAPIKey()
	body, check := good[3:43], good[43:]
	// A different but valid checksum digit, to break only the checksum.
	badCheck := check[:5] + string(base62Digits[(strings.IndexByte(base62Digits, check[5])+1)%62])
	// A different first body character (CRC32 catches every single change).
	changed := "X"
	if body[0] == 'X' {
		changed = "Y"
	}
	tests := []struct {
		name string
		key  string
		want error // nil: accepted
	}{
		{"generated", good, nil},
		{"bad checksum", KeyPrefix + body + badCheck, ErrKeyChecksum},
		{"body changed", KeyPrefix + changed + body[1:] + check, ErrKeyChecksum},
		{"prefix upper case", "KG_" + body + check, nil}, // not kg_: an imported key of 49 visible characters
		{"too short", good[:GeneratedLen-1], ErrKeyFormat},
		{"too long", good + "0", ErrKeyFormat},
		{"prefix only", "kg_", ErrKeyFormat},
		{"not base62", KeyPrefix + "-" + body[1:] + check, ErrKeyFormat},
		{"underscore in body", KeyPrefix + body[:39] + "_" + check, ErrKeyFormat},
		{"non-ASCII in body", KeyPrefix + body[:38] + "é" + check, ErrKeyFormat},
		{"comma (two headers merged)", good + "," + good, ErrKeyFormat},
		{"comma in imported key", "abcdefghijklmnop,q", ErrKeyFormat},
		{"space inside", "abcdefgh ijklmnopq", ErrKeyFormat},
		{"leading space", " " + good, ErrKeyFormat},
		{"trailing space", good + " ", ErrKeyFormat},
		{"tab", "abcdefghijklmnop\t", ErrKeyFormat},
		{"newline", "abcdefghijklmnop\n", ErrKeyFormat},
		{"NUL", "abcdefghijklmnop\x00", ErrKeyFormat},
		{"DEL", "abcdefghijklmnop\x7f", ErrKeyFormat},
		{"quote", `abcdefghijklmnop"`, ErrKeyFormat},
		{"backslash", `abcdefghijklmnop\`, ErrKeyFormat},
		{"semicolon", "abcdefghijklmnop;", ErrKeyFormat},
		{"UTF-8", "abcdefghijklmnopé", ErrKeyFormat},
		{"empty", "", ErrKeyFormat},
		{"imported 15", strings.Repeat("a", MinImportLen-1), ErrKeyFormat},
		{"imported 16", strings.Repeat("a", MinImportLen), nil},
		{"imported 512", strings.Repeat("a", MaxKeyLen), nil},
		{"imported 513", strings.Repeat("a", MaxKeyLen+1), ErrKeyFormat},
		{"django", "-egJfbZ6JSlwHgJbbDCdNcFlEyVpbdtZDrvEhjejXWE", nil},
		{"visible punctuation", "!#$%&'()*+-./:<=>?@[]^_`{|}~", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKeyFormat(tt.key)
			if !errors.Is(err, tt.want) {
				t.Errorf("CheckKeyFormat(%q) = %v, want %v", tt.key, err, tt.want)
			}
			if (CheckImportableKey(tt.key) == nil) != (tt.want == nil) {
				t.Errorf("CheckImportableKey(%q) disagrees with CheckKeyFormat", tt.key)
			}
		})
	}
}

func TestCheckKeyFormatDjango(t *testing.T) {
	for range 1000 {
		k := credentialstest.DjangoKey()
		if strings.HasPrefix(k, KeyPrefix) {
			continue // 1 in 262,144: see the note in the package report
		}
		if err := CheckKeyFormat(k); err != nil {
			t.Fatalf("CheckKeyFormat(token_urlsafe(32) %q) = %v", k, err)
		}
	}
}

func TestHashKey(t *testing.T) {
	for _, k := range []string{"", "abc", GenerateAPIKey(), credentialstest.DjangoKey(), strings.Repeat("x", MaxKeyLen), strings.Repeat("y", MaxKeyLen+1)} {
		if got, want := HashKey(k), sha256.Sum256([]byte(k)); got != want {
			t.Errorf("HashKey(%d bytes) = %x, want %x", len(k), got, want)
		}
	}
	// FIPS 180-2 "abc".
	sum := HashKey("abc")
	if got := hex.EncodeToString(sum[:]); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashKey(abc) = %s", got)
	}
}

// TestHashKeyPython proves a key made and hashed the Python way
// (secrets.token_urlsafe(32), hashlib.sha256(key.encode()).hexdigest())
// imports as a digest and matches the key. python3 is part of the test
// environment: without it the test fails rather than skips.
func TestHashKeyPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not on PATH (it is required by this test): %v", err)
	}
	out, err := exec.Command(py, "-c", `import hashlib, secrets
k = secrets.token_urlsafe(32)
print(k, hashlib.sha256(k.encode()).hexdigest())
k = "kg_fixed-vector"
print(k, hashlib.sha256(k.encode()).hexdigest())`).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("python3 printed %q", out)
	}
	for _, line := range lines {
		key, digest, _ := strings.Cut(line, " ")
		sum := HashKey(key)
		if got := hex.EncodeToString(sum[:]); got != digest {
			t.Errorf("HashKey(%q) = %s, python says %s", key, got, digest)
		}
		if got := credentialstest.SHA256Hex(key); got != digest {
			t.Errorf("SHA256Hex(%q) = %s, python says %s", key, got, digest)
		}
	}
	// The random token_urlsafe(32) key is accepted as a key (unless it is
	// the 1 in 262,144 that starts with kg_).
	if key, _, _ := strings.Cut(lines[0], " "); !strings.HasPrefix(key, KeyPrefix) {
		if err := CheckKeyFormat(key); err != nil {
			t.Errorf("CheckKeyFormat(%q) = %v", key, err)
		}
	}
}
