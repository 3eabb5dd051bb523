package credentialstest

import (
	"regexp"
	"testing"
)

func TestDjangoKey(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 100 {
		k := DjangoKey()
		if !re.MatchString(k) || seen[k] {
			t.Fatalf("DjangoKey() = %q: not token_urlsafe(32) shaped, or repeated", k)
		}
		seen[k] = true
	}
}

func TestSHA256Hex(t *testing.T) {
	// FIPS 180-2 test vector.
	if got, want := SHA256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("SHA256Hex(abc) = %s, want %s", got, want)
	}
}
