package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bbolt "go.etcd.io/bbolt"

	"github.com/keygate/keygate/credentials"
)

// rotationStore writes a closed store at a new path holding one HS256
// issuer (one oct key), one EdDSA issuer and two HMAC keys, all under
// testMasterKey, and returns its path and the index data of its secrets.
func rotationStore(t *testing.T) (string, credentials.IndexData) {
	t.Helper()
	path := dbPath(t)
	s, err := Open(path, Options{FlushInterval: -1, MasterKey: testMasterKey})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme")},
		Clients: []credentials.Client{client("cl_a", "acme")},
		Issuers: []credentials.Issuer{hsIssuer("acme", "hs", octJWK("k1", strings.Repeat("j", 40))), edIssuer("acme", "ed")},
		HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('1')),
			legacyKey("hk_2", "cl_a", bytes.Repeat([]byte{'2'}, 64))},
	})
	data := secretData(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// secretData returns the revision, issuers and HMAC keys (with secrets)
// of s as the index gets them, ordered.
func secretData(s *Store) credentials.IndexData {
	d := s.cur.Load().indexData()
	out := credentials.IndexData{Revision: d.Revision, Issuers: d.Issuers, HMACKeys: d.HMACKeys}
	slices.SortFunc(out.Issuers, func(a, b credentials.Issuer) int { return strings.Compare(a.ID(), b.ID()) })
	slices.SortFunc(out.HMACKeys, func(a, b credentials.HMACKey) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// sealedValues returns the sealed bytes of every secret in the file.
func sealedValues(t *testing.T, path string) [][]byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out [][]byte
	db.View(func(tx *bbolt.Tx) error {
		tx.Bucket(bucketIssuers).ForEach(func(_, v []byte) error {
			var r issuerRecord
			json.Unmarshal(v, &r)
			for _, b := range r.Sealed {
				out = append(out, b)
			}
			return nil
		})
		return tx.Bucket(bucketHMACKeys).ForEach(func(_, v []byte) error {
			var r hmacKeyRecord
			json.Unmarshal(v, &r)
			out = append(out, r.Sealed)
			return nil
		})
	})
	return out
}

func TestRotateMasterKey(t *testing.T) {
	path, want := rotationStore(t)
	sealedBefore := sealedValues(t, path)
	n, err := RotateMasterKey(path, testMasterKey, otherMasterKey, Options{})
	if err != nil || n != 3 {
		t.Fatalf("RotateMasterKey: %d, %v", n, err)
	}
	// Every sealed value changed.
	for _, a := range sealedValues(t, path) {
		for _, b := range sealedBefore {
			if bytes.Equal(a, b) {
				t.Fatal("a secret was not re-encrypted")
			}
		}
	}
	// The old key, or none, is refused; the new key opens the store and
	// the index gets the same secrets at the same revision.
	if _, err := Open(path, Options{FlushInterval: -1, MasterKey: testMasterKey}); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("Open with the old key: %v", err)
	}
	if _, err := Open(path, Options{FlushInterval: -1}); !errors.Is(err, ErrMasterKeyRequired) {
		t.Fatalf("Open without a key: %v", err)
	}
	s := open(t, path, Options{MasterKey: otherMasterKey})
	if got := secretData(s); !cmp.Equal(got, want) {
		t.Fatalf("after rotation:\n%s", cmp.Diff(want, got))
	}
	// Secret-less upserts keep the re-encrypted secrets; new ones are
	// sealed under the new key.
	mustApply(t, s, &credentials.Changes{
		HMACKeys: []credentials.HMACKey{{ID: "hk_1", Name: "renamed"}, hmacKey("hk_3", "cl_a", hmacSecret('3'))},
	})
	want = secretData(s)
	s.Close()
	s = open(t, path, Options{MasterKey: otherMasterKey})
	if got := secretData(s); !cmp.Equal(got, want) {
		t.Fatalf("after reopen:\n%s", cmp.Diff(want, got))
	}
	s.Close()

	// And back.
	if n, err := RotateMasterKey(path, otherMasterKey, testMasterKey, Options{}); err != nil || n != 4 {
		t.Fatalf("rotate back: %d, %v", n, err)
	}
	s = open(t, path, Options{MasterKey: testMasterKey})
	if got := secretData(s); !cmp.Equal(got, want) {
		t.Fatalf("after rotating back:\n%s", cmp.Diff(want, got))
	}
}

func TestFailedRotationChangesNothing(t *testing.T) {
	path, want := rotationStore(t)
	before := fileSum(t, path)
	unchanged := func(t *testing.T) {
		t.Helper()
		if fileSum(t, path) != before {
			t.Fatal("a failed rotation changed the file")
		}
	}

	t.Run("wrong old key", func(t *testing.T) {
		n, err := RotateMasterKey(path, otherMasterKey, bytes.Repeat([]byte{9}, MasterKeySize), Options{})
		if !errors.Is(err, ErrWrongMasterKey) || n != 0 || !strings.Contains(err.Error(), path) {
			t.Fatalf("RotateMasterKey: %d, %v", n, err)
		}
		unchanged(t)
	})
	t.Run("bad key sizes", func(t *testing.T) {
		for _, keys := range [][2][]byte{{testMasterKey[:16], otherMasterKey}, {testMasterKey, otherMasterKey[:31]}, {nil, otherMasterKey}, {testMasterKey, nil}} {
			if _, err := RotateMasterKey(path, keys[0], keys[1], Options{}); err == nil {
				t.Fatalf("keys of %d and %d bytes accepted", len(keys[0]), len(keys[1]))
			}
		}
		unchanged(t)
	})
	t.Run("locked by a running keygate", func(t *testing.T) {
		s := open(t, path, Options{MasterKey: testMasterKey})
		_, err := RotateMasterKey(path, testMasterKey, otherMasterKey, Options{LockTimeout: 50 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), "stop keygate") {
			t.Fatalf("RotateMasterKey on an open store: %v", err)
		}
		s.Close()
		unchanged(t)
	})
	t.Run("a secret that does not decrypt", func(t *testing.T) {
		// Without the check value the old key is only tested by the
		// secrets: the last one fails after the others were re-sealed in
		// the transaction, which is rolled back.
		p := filepath.Join(t.TempDir(), "copy.db")
		data, _ := os.ReadFile(path)
		os.WriteFile(p, data, 0o600)
		editFile(t, p, func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Delete(metaKeyCheck); err != nil {
				return err
			}
			b := tx.Bucket(bucketHMACKeys)
			var r hmacKeyRecord
			if err := json.Unmarshal(b.Get([]byte("hk_2")), &r); err != nil {
				return err
			}
			r.Sealed[30] ^= 1
			v, _ := json.Marshal(&r)
			return b.Put([]byte("hk_2"), v)
		})
		pre := fileSum(t, p)
		_, err := RotateMasterKey(p, testMasterKey, otherMasterKey, Options{})
		if err == nil || !strings.Contains(err.Error(), `HMAC key "hk_2"`) {
			t.Fatalf("RotateMasterKey: %v", err)
		}
		if fileSum(t, p) != pre {
			t.Fatal("a failed rotation changed the file")
		}
	})
	t.Run("not a store", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.db")
		if _, err := RotateMasterKey(missing, testMasterKey, otherMasterKey, Options{}); err == nil {
			t.Fatal("a missing file was rotated")
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("RotateMasterKey created the file: %v", err)
		}
		junk := filepath.Join(t.TempDir(), "junk.db")
		os.WriteFile(junk, bytes.Repeat([]byte("junk"), 4096), 0o600)
		if _, err := RotateMasterKey(junk, testMasterKey, otherMasterKey, Options{}); err == nil {
			t.Fatal("a junk file was rotated")
		}
	})

	// The store still opens with the old key and holds the same secrets.
	s := open(t, path, Options{MasterKey: testMasterKey})
	if got := secretData(s); !cmp.Equal(got, want) {
		t.Fatalf("after failed rotations:\n%s", cmp.Diff(want, got))
	}
}

func TestRotateMasterKeyWithoutSecrets(t *testing.T) {
	// No secret and no check: nothing is written.
	path := dbPath(t)
	s := open(t, path, Options{})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}})
	s.Close()
	before := fileSum(t, path)
	if n, err := RotateMasterKey(path, testMasterKey, otherMasterKey, Options{}); err != nil || n != 0 {
		t.Fatalf("RotateMasterKey: %d, %v", n, err)
	}
	if fileSum(t, path) != before {
		t.Fatal("a rotation without secrets wrote the file")
	}
	open(t, path, Options{}).Close()

	// A check but no secret left: the check moves to the new key.
	path = dbPath(t)
	s = open(t, path, Options{MasterKey: testMasterKey})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Clients: []credentials.Client{client("cl_a", "acme")},
		HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('1'))}})
	mustApply(t, s, &credentials.Changes{DeleteHMACKeys: []string{"hk_1"}})
	s.Close()
	if n, err := RotateMasterKey(path, testMasterKey, otherMasterKey, Options{}); err != nil || n != 0 {
		t.Fatalf("RotateMasterKey: %d, %v", n, err)
	}
	if _, err := Open(path, Options{FlushInterval: -1, MasterKey: testMasterKey}); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("Open with the old key: %v", err)
	}
	open(t, path, Options{MasterKey: otherMasterKey})
}
