package bolt

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/keygate/keygate/credentials"
)

// goodStore writes a real store with some history and returns its path.
func goodStore(t *testing.T) string {
	path := dbPath(t)
	s, err := Open(path, Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{{Slug: "acme", DisplayName: "Acme Corp"}},
		Clients: []credentials.Client{client("cl_a", "acme")},
		APIKeys: genKeys("c", "cl_a", 2000),
	})
	mustApply(t, s, &credentials.Changes{DeleteAPIKeys: []string{"ak_c1"}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func copyWith(t *testing.T, src string, edit func([]byte) []byte) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(dst, edit(bytes.Clone(data)), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func wantCorrupted(t *testing.T, path string) {
	t.Helper()
	before := fileSum(t, path)
	s, err := Open(path, Options{FlushInterval: -1})
	if err == nil {
		s.Close()
		t.Fatalf("Open of a damaged store succeeded")
	}
	want := "keygate: store " + path + " is corrupted or not a keygate store: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q does not start with %q", err, want)
	}
	t.Logf("%v", err)
	if fileSum(t, path) != before {
		t.Fatal("Open modified the damaged file")
	}
}

func TestCorruptedOrTruncatedFileIsRefused(t *testing.T) {
	good := goodStore(t)
	const page = 4096
	var used int // bytes in use by the database (the file may be longer)
	db, err := bbolt.Open(good, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bbolt.Tx) error { used = int(tx.Size()); return nil })
	db.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	garbage := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	cases := map[string]func([]byte) []byte{
		"meta pages garbage": func(b []byte) []byte { garbage(b[:2*page]); return b },
		"data pages garbage": func(b []byte) []byte { garbage(b[2*page:]); return b },
		"every page half garbage": func(b []byte) []byte {
			for off := 2 * page; off < len(b); off += page {
				garbage(b[off+page/2 : off+page])
			}
			return b
		},
		"record not JSON": func(b []byte) []byte {
			old := []byte(`{"slug":"acme"`)
			if !bytes.Contains(b, old) {
				t.Fatal("tenant record not found in the file")
			}
			return bytes.ReplaceAll(b, old, []byte(`!"slug":"acme"`))
		},
		"truncated to 100 bytes":     func(b []byte) []byte { return b[:100] },
		"truncated to 3 pages":       func(b []byte) []byte { return b[:3*page] },
		"truncated to half":          func(b []byte) []byte { return b[:len(b)/2] },
		"truncated by one used page": func(b []byte) []byte { return b[:used-page] },
		"not a bbolt file":           func([]byte) []byte { return bytes.Repeat([]byte("hello, world\n"), 1000) },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			wantCorrupted(t, copyWith(t, good, edit))
		})
	}
	// The original still opens.
	s := open(t, good, Options{})
	if st, _ := s.Status(ctx); st.Revision != 2 || st.Counts.APIKeys != 1999 {
		t.Fatalf("original: %+v", st)
	}
}

func TestForeignBoltFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("something-else"))
		return b.Put([]byte("k"), []byte("v"))
	})
	db.Close()
	wantCorrupted(t, path)

	// A meta bucket with another format marker.
	path2 := filepath.Join(t.TempDir(), "other2.db")
	db, _ = bbolt.Open(path2, 0o600, nil)
	db.Update(func(tx *bbolt.Tx) error {
		b, _ := tx.CreateBucket(bucketMeta)
		return b.Put(metaFormat, []byte("not-keygate"))
	})
	db.Close()
	wantCorrupted(t, path2)
}

func TestEmptyBoltFileIsInitialized(t *testing.T) {
	// A bbolt file without any bucket (a first Open that crashed before
	// its first commit) holds nothing and becomes an empty store.
	path := filepath.Join(t.TempDir(), "empty.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := open(t, path, Options{})
	if st, _ := s.Status(ctx); st.Revision != 0 {
		t.Fatalf("status: %+v", st)
	}
}
