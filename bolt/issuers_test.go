package bolt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bbolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keygate/keygate/credentials"
)

var (
	testMasterKey  = bytes.Repeat([]byte{0x4b}, MasterKeySize)
	otherMasterKey = bytes.Repeat([]byte{0x17}, MasterKeySize)
)

// edJWK returns an Ed25519 public JWK derived from seed.
func edJWK(kid string, seed byte) credentials.JWK {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	return credentials.JWK{Kty: "OKP", Crv: "Ed25519", Kid: kid, X: base64.RawURLEncoding.EncodeToString(pub)}
}

// octJWK returns an oct JWK whose secret is the bytes of secret.
func octJWK(kid, secret string) credentials.JWK {
	return credentials.JWK{Kty: "oct", Kid: kid, K: base64.RawURLEncoding.EncodeToString([]byte(secret))}
}

func edIssuer(tenant, name string) credentials.Issuer {
	return credentials.Issuer{Tenant: tenant, Name: name, Issuer: "https://" + name + "." + tenant + ".example", Algorithms: []string{"EdDSA"},
		Audiences: []string{"api"}, JWKS: &credentials.JWKS{Keys: []credentials.JWK{edJWK("e1", 1)}}}
}

func hsIssuer(tenant, name string, keys ...credentials.JWK) credentials.Issuer {
	return credentials.Issuer{Tenant: tenant, Name: name, Issuer: "https://" + name + "." + tenant + ".example", Algorithms: []string{"HS256"}, JWKS: &credentials.JWKS{Keys: keys}}
}

// storedSecret returns the in-memory secret (K) of key i of issuer id,
// as the index gets it.
func storedSecret(t *testing.T, s *Store, id string, i int) string {
	t.Helper()
	for _, is := range s.cur.Load().indexData().Issuers {
		if is.ID() == id {
			return is.JWKS.Keys[i].K
		}
	}
	t.Fatalf("issuer %s is not in the index data", id)
	return ""
}

// editFile opens the closed store at path with bbolt and runs fn in a
// write transaction.
func editFile(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestIssuerUpsertGetListDelete(t *testing.T) {
	clk := newClock()
	s := open(t, dbPath(t), Options{Now: clk.Now})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("a"), tenant("a-b"), tenant("beta")}})
	res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{
		edIssuer("a-b", "idp"), edIssuer("beta", "corp"), edIssuer("a", "zeta"), edIssuer("a", "alpha"),
	}})
	if res.Revision != 2 || !cmp.Equal(res.Summary, map[string]map[string]int{"issuers": {"upserted": 4}}) {
		t.Fatalf("upsert: %+v", res)
	}
	t0 := clk.Now()
	all, err := s.Issuers(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, is := range all {
		ids = append(ids, is.ID())
	}
	// By tenant, then name: "a" sorts before "a-b" although "a-b/" < "a/".
	if want := []string{"a/alpha", "a/zeta", "a-b/idp", "beta/corp"}; !cmp.Equal(ids, want) {
		t.Fatalf("Issuers: %v, want %v", ids, want)
	}
	if list, _ := s.Issuers(ctx, "a"); len(list) != 2 || list[0].Name != "alpha" {
		t.Fatalf("Issuers(a): %+v", list)
	}
	got, err := s.Issuer(ctx, "beta", "corp")
	want := edIssuer("beta", "corp")
	want.CreatedAt, want.UpdatedAt = t0, t0
	if err != nil || !cmp.Equal(*got, want) {
		t.Fatalf("Issuer: %v\n%s", err, cmp.Diff(want, *got))
	}
	// The result is a copy.
	got.Audiences[0], got.JWKS.Keys[0].Kid = "changed", "changed"
	if again, _ := s.Issuer(ctx, "beta", "corp"); again.Audiences[0] != "api" || again.JWKS.Keys[0].Kid != "e1" {
		t.Fatalf("Issuer shares memory with the store: %+v", again)
	}
	_, err = s.Issuer(ctx, "beta", "nope")
	wantCode(t, err, credentials.ENotFound)
	if st, _ := s.Status(ctx); st.Counts.Issuers != 4 {
		t.Fatalf("status: %+v", st)
	}

	// The same upsert again changes nothing; a change keeps created_at.
	clk.Add(time.Minute)
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{edIssuer("beta", "corp")}}); res.Changed || res.Revision != 2 {
		t.Fatalf("identical upsert: %+v", res)
	}
	changed := edIssuer("beta", "corp")
	changed.Leeway = credentials.Duration(30 * time.Second)
	changed.RequiredClaims = map[string]any{"token_type": "access"}
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{changed}}); !res.Changed || res.Revision != 3 {
		t.Fatalf("change: %+v", res)
	}
	if got, _ := s.Issuer(ctx, "beta", "corp"); !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(clk.Now()) || got.Leeway != changed.Leeway {
		t.Fatalf("after change: %+v", got)
	}

	// Delete.
	res = mustApply(t, s, &credentials.Changes{DeleteIssuers: []string{"a/zeta"}})
	if res.Revision != 4 || !cmp.Equal(res.Summary, map[string]map[string]int{"issuers": {"deleted": 1}}) {
		t.Fatalf("delete: %+v", res)
	}
	_, err = s.Issuer(ctx, "a", "zeta")
	wantCode(t, err, credentials.ENotFound)
	_, err = s.Apply(ctx, &credentials.Changes{DeleteIssuers: []string{"a/zeta"}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.ENotFound)
	_, err = s.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{edIssuer("a", "alpha")}, DeleteIssuers: []string{"a/alpha"}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.EInvalid)

	// Invalid issuers are refused with the field.
	bad := edIssuer("a", "alpha")
	bad.Algorithms = []string{"none"}
	_, err = s.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{bad}}, credentials.ApplyOptions{})
	if wantCode(t, err, credentials.EInvalid); credentials.ErrorField(err) != "issuers[a/alpha].algorithms[0]" {
		t.Fatalf("field of %v", err)
	}
	_, err = s.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{edIssuer("a", "x"), edIssuer("a", "x")}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.EInvalid)

	// Reopened, the issuers are the same.
	path := s.Path()
	before, _ := s.Issuers(ctx, "")
	s.Close()
	s2 := open(t, path, Options{})
	after, _ := s2.Issuers(ctx, "")
	if !cmp.Equal(before, after) {
		t.Fatalf("reopened:\n%s", cmp.Diff(before, after))
	}
	if res := mustApply(t, s2, &credentials.Changes{Issuers: []credentials.Issuer{changed}}); res.Changed {
		t.Fatalf("identical upsert after reopen: %+v", res)
	}
}

func TestIssuerTenantsAndReplace(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	// The tenant must exist, in the store or the batch.
	_, err := s.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{edIssuer("acme", "idp")}}, credentials.ApplyOptions{})
	if wantCode(t, err, credentials.EInvalid); credentials.ErrorField(err) != "issuers[acme/idp].tenant" {
		t.Fatalf("field of %v", err)
	}
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme"), tenant("beta")},
		Issuers: []credentials.Issuer{edIssuer("acme", "idp"), edIssuer("acme", "old"), edIssuer("beta", "idp")},
	})

	// A tenant with issuers cannot be deleted, unless they go too.
	_, err = s.Apply(ctx, &credentials.Changes{DeleteTenants: []string{"beta"}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.EConflict)
	if !strings.Contains(credentials.ErrorMessage(err), "beta/idp") {
		t.Fatalf("conflict does not name the issuer: %v", err)
	}
	res := mustApply(t, s, &credentials.Changes{DeleteTenants: []string{"beta"}, DeleteIssuers: []string{"beta/idp"}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"tenants": {"deleted": 1}, "issuers": {"deleted": 1}}) {
		t.Fatalf("delete tenant and issuer: %+v", res)
	}

	// Replace deletes the issuers it does not name, and refuses an issuer
	// whose tenant it deletes.
	_, err = s.Apply(ctx, &credentials.Changes{Replace: true, Issuers: []credentials.Issuer{edIssuer("acme", "idp")}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.EInvalid)
	res = mustApply(t, s, &credentials.Changes{Replace: true, Tenants: []credentials.Tenant{tenant("acme")}, Issuers: []credentials.Issuer{edIssuer("acme", "idp")}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"issuers": {"deleted": 1}}) {
		t.Fatalf("replace: %+v", res)
	}
	if list, _ := s.Issuers(ctx, ""); len(list) != 1 || list[0].ID() != "acme/idp" {
		t.Fatalf("after replace: %+v", list)
	}
	// A Replace without issuers deletes them all.
	res = mustApply(t, s, &credentials.Changes{Replace: true, Tenants: []credentials.Tenant{tenant("acme")}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"issuers": {"deleted": 1}}) {
		t.Fatalf("replace without issuers: %+v", res)
	}
}

func TestOctSecretsAreEncryptedAtRest(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	path := dbPath(t)
	s := open(t, path, Options{MasterKey: testMasterKey, Logger: zap.New(core)})
	secret := "an-hs256-secret-of-more-than-32-bytes!"
	is := hsIssuer("acme", "hs", octJWK("k1", secret))
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Issuers: []credentials.Issuer{is}})
	if got := storedSecret(t, s, "acme/hs", 0); got != is.JWKS.Keys[0].K {
		t.Fatalf("index data secret %q, want %q", got, is.JWKS.Keys[0].K)
	}
	forms := [][]byte{
		[]byte(secret),
		[]byte(base64.RawURLEncoding.EncodeToString([]byte(secret))),
		[]byte(base64.StdEncoding.EncodeToString([]byte(secret))),
		[]byte(secret[:16]),
	}
	// Reads return no secret.
	got, err := s.Issuer(ctx, "acme", "hs")
	if err != nil || got.JWKS.Keys[0].K != "" || got.JWKS.Keys[0].Kid != "k1" {
		t.Fatalf("Issuer: %+v, %v", got, err)
	}
	ex, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s.Issuers(ctx, "")
	for name, v := range map[string]any{"Issuer": got, "Issuers": list, "Export": ex} {
		data, _ := json.Marshal(v)
		for _, f := range forms {
			if bytes.Contains(data, f) {
				t.Fatalf("%s holds the secret: %s", name, data)
			}
		}
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, f := range forms {
			if strings.Contains(line, string(f)) {
				t.Fatalf("log holds the secret: %s", line)
			}
		}
	}
	// The exported document applies unchanged (the secret is kept).
	ch, err := ex.Changes(true)
	if err != nil {
		t.Fatal(err)
	}
	if res := mustApply(t, s, ch); res.Changed {
		t.Fatalf("export round trip: %+v", res)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Neither the file nor its backup holds the secret in any form.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range forms {
		if bytes.Contains(data, f) {
			t.Fatalf("the store file holds the secret (%q)", f)
		}
	}
	var check []byte
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bbolt.Tx) error {
		check = bytes.Clone(tx.Bucket(bucketMeta).Get(metaKeyCheck))
		var r issuerRecord
		if err := json.Unmarshal(tx.Bucket(bucketIssuers).Get([]byte("acme/hs")), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Sealed["0"]) != 12+len(secret)+16 || r.Issuer.JWKS.Keys[0].K != "" {
			t.Fatalf("record: %+v", r)
		}
		return nil
	})
	db.Close()
	if len(check) != 32 {
		t.Fatalf("master key check %x", check)
	}

	// Reopened with the key, the index gets the secret again.
	s2 := open(t, path, Options{MasterKey: testMasterKey})
	if got := storedSecret(t, s2, "acme/hs", 0); got != is.JWKS.Keys[0].K {
		t.Fatalf("secret after reopen %q, want %q", got, is.JWKS.Keys[0].K)
	}
	if res := mustApply(t, s2, &credentials.Changes{Issuers: []credentials.Issuer{is}}); res.Changed {
		t.Fatalf("identical upsert with the secret after reopen: %+v", res)
	}
}

func TestMasterKeyIsRequiredAndChecked(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{MasterKey: testMasterKey})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")},
		Issuers: []credentials.Issuer{hsIssuer("acme", "hs", octJWK("k1", strings.Repeat("s", 32)))}})
	s.Close()
	before := fileSum(t, path)

	_, err := Open(path, Options{FlushInterval: -1})
	if !errors.Is(err, ErrMasterKeyRequired) ||
		err.Error() != "keygate: store "+path+" holds encrypted secrets: a master key is required (--master-key-file)" {
		t.Fatalf("Open without a key: %v", err)
	}
	_, err = Open(path, Options{FlushInterval: -1, MasterKey: otherMasterKey})
	if !errors.Is(err, ErrWrongMasterKey) ||
		err.Error() != "keygate: store "+path+": the master key does not match the one its secrets were encrypted with" {
		t.Fatalf("Open with another key: %v", err)
	}
	_, err = Open(path, Options{FlushInterval: -1, MasterKey: testMasterKey[:16]})
	if err == nil || !strings.Contains(err.Error(), "must be 32 bytes") {
		t.Fatalf("Open with a 16-byte key: %v", err)
	}
	if fileSum(t, path) != before {
		t.Fatal("a refused Open modified the file")
	}

	// Without the check value, a sealed secret still needs the key, and
	// a wrong key fails to decrypt it.
	editFile(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaKeyCheck) })
	if _, err := Open(path, Options{FlushInterval: -1}); !errors.Is(err, ErrMasterKeyRequired) {
		t.Fatalf("Open without a key or check: %v", err)
	}
	_, err = Open(path, Options{FlushInterval: -1, MasterKey: otherMasterKey})
	if err == nil || !strings.Contains(err.Error(), `issuer "acme/hs"`) {
		t.Fatalf("Open with another key and no check: %v", err)
	}

	// A store with the check value and no secret left still needs it.
	path2 := dbPath(t)
	s2 := open(t, path2, Options{MasterKey: testMasterKey})
	mustApply(t, s2, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")},
		Issuers: []credentials.Issuer{hsIssuer("acme", "hs", octJWK("k1", strings.Repeat("s", 32)))}})
	mustApply(t, s2, &credentials.Changes{DeleteIssuers: []string{"acme/hs"}})
	s2.Close()
	if _, err := Open(path2, Options{FlushInterval: -1}); !errors.Is(err, ErrMasterKeyRequired) {
		t.Fatalf("Open of a store with a check value without a key: %v", err)
	}

	// A store without secrets opens with or without a key, and a store
	// without a key refuses to store an oct key.
	path3 := dbPath(t)
	s3 := open(t, path3, Options{})
	mustApply(t, s3, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Issuers: []credentials.Issuer{edIssuer("acme", "ed")}})
	mixed := hsIssuer("acme", "hs", edJWK("e", 2), octJWK("k1", strings.Repeat("s", 32)))
	mixed.Algorithms = []string{"EdDSA", "HS256"}
	_, err = s3.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{mixed}}, credentials.ApplyOptions{})
	if wantCode(t, err, credentials.EInvalid); credentials.ErrorField(err) != "issuers[acme/hs].jwks.keys[1].k" ||
		!strings.Contains(credentials.ErrorMessage(err), "a master key is required to store HS* keys") {
		t.Fatalf("oct key without a master key: %v", err)
	}
	s3.Close()
	open(t, path3, Options{MasterKey: testMasterKey}).Close()
	open(t, path3, Options{})
}

func TestMovedOrAlteredSecretFailsOpen(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{MasterKey: testMasterKey})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Issuers: []credentials.Issuer{
		hsIssuer("acme", "a", octJWK("k1", strings.Repeat("a", 32))),
		hsIssuer("acme", "b", octJWK("k1", strings.Repeat("b", 32))),
	}})
	s.Close()

	edit := func(t *testing.T, fn func(a, b *issuerRecord)) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "copy.db")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		editFile(t, p, func(tx *bbolt.Tx) error {
			bk := tx.Bucket(bucketIssuers)
			var a, b issuerRecord
			if err := json.Unmarshal(bk.Get([]byte("acme/a")), &a); err != nil {
				return err
			}
			if err := json.Unmarshal(bk.Get([]byte("acme/b")), &b); err != nil {
				return err
			}
			fn(&a, &b)
			for id, r := range map[string]*issuerRecord{"acme/a": &a, "acme/b": &b} {
				data, _ := json.Marshal(r)
				if err := bk.Put([]byte(id), data); err != nil {
					return err
				}
			}
			return nil
		})
		return p
	}
	wantOpenError := func(t *testing.T, p, want string) {
		t.Helper()
		before := fileSum(t, p)
		s, err := Open(p, Options{FlushInterval: -1, MasterKey: testMasterKey})
		if err == nil {
			s.Close()
			t.Fatal("Open succeeded")
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), strings.Repeat("a", 32)) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
		if fileSum(t, p) != before {
			t.Fatal("Open modified the file")
		}
		t.Log(err)
	}
	t.Run("moved", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *issuerRecord) { b.Sealed["0"] = a.Sealed["0"] }), `issuer "acme/b"`)
	})
	t.Run("kid changed", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *issuerRecord) { b.Issuer.JWKS.Keys[0].Kid = "k2" }), `issuer "acme/b"`)
	})
	t.Run("tampered", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *issuerRecord) { a.Sealed["0"][20] ^= 1 }), `issuer "acme/a"`)
	})
	t.Run("truncated", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *issuerRecord) { a.Sealed["0"] = a.Sealed["0"][:10] }), `issuer "acme/a"`)
	})
	t.Run("removed", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *issuerRecord) { delete(a.Sealed, "0") }), `issuer "acme/a"`)
	})
	t.Run("plaintext", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *issuerRecord) { a.Issuer.JWKS.Keys[0].K = "c2VjcmV0" }), `issuer "acme/a"`)
	})
	t.Run("unchanged", func(t *testing.T) {
		p := edit(t, func(a, b *issuerRecord) {})
		s := open(t, p, Options{MasterKey: testMasterKey})
		if got := storedSecret(t, s, "acme/b", 0); got != base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("b", 32))) {
			t.Fatalf("secret %q", got)
		}
	})
}

func TestUpsertWithoutSecretKeepsIt(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{MasterKey: testMasterKey})
	s1, s2, s3 := strings.Repeat("1", 32), strings.Repeat("2", 40), strings.Repeat("3", 48)
	full := hsIssuer("acme", "hs", octJWK("k1", s1), octJWK("dup", s2), octJWK("dup", s3), edJWK("e1", 1))
	full.Algorithms = []string{"HS256", "EdDSA"}
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Issuers: []credentials.Issuer{full}})
	sealedBefore := s.cur.Load().issuers["acme/hs"].sealed

	// The redacted issuer (as read) applies unchanged.
	got, _ := s.Issuer(ctx, "acme", "hs")
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{*got}}); res.Changed || res.Revision != 1 {
		t.Fatalf("redacted upsert: %+v", res)
	}
	// Changed, without secrets and reordered: each key keeps its own.
	upd := got.Redacted()
	upd.Audiences = []string{"api"}
	upd.JWKS.Keys = []credentials.JWK{upd.JWKS.Keys[3], upd.JWKS.Keys[1], upd.JWKS.Keys[0], upd.JWKS.Keys[2]}
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{upd}}); !res.Changed || res.Revision != 2 {
		t.Fatalf("update: %+v", res)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	for i, want := range []string{"", b64([]byte(s2)), b64([]byte(s1)), b64([]byte(s3))} {
		if got := storedSecret(t, s, "acme/hs", i); got != want {
			t.Fatalf("key %d: secret %q, want %q", i, got, want)
		}
	}
	// The sealed bytes were copied, not sealed again.
	if sealed := s.cur.Load().issuers["acme/hs"].sealed; !bytes.Equal(sealed[2], sealedBefore[0]) || !bytes.Equal(sealed[1], sealedBefore[1]) {
		t.Fatal("kept secrets were sealed again")
	}
	// Reopened, the secrets decrypt where they moved.
	s.Close()
	s = open(t, path, Options{MasterKey: testMasterKey})
	if got := storedSecret(t, s, "acme/hs", 3); got != b64([]byte(s3)) {
		t.Fatalf("after reopen: %q", got)
	}
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{upd}}); res.Changed {
		t.Fatalf("identical upsert after reopen: %+v", res)
	}

	// A new secret for a kid replaces the stored one.
	upd.JWKS.Keys[2].K = b64([]byte(strings.Repeat("n", 32)))
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{upd}}); !res.Changed {
		t.Fatalf("new secret: %+v", res)
	}
	if got := storedSecret(t, s, "acme/hs", 2); got != b64([]byte(strings.Repeat("n", 32))) {
		t.Fatalf("new secret: %q", got)
	}

	// No stored key with that kid (or no stored issuer): invalid.
	for _, c := range []struct {
		is    credentials.Issuer
		field string
		kid   string
	}{
		{hsIssuer("acme", "hs", credentials.JWK{Kty: "oct", Kid: "nope"}), "issuers[acme/hs].jwks.keys[0].k", "nope"},
		{hsIssuer("acme", "hs", credentials.JWK{Kty: "oct", Kid: "k1"}, credentials.JWK{Kty: "oct", Kid: "k1"}), "issuers[acme/hs].jwks.keys[1].k", "k1"},
		{hsIssuer("acme", "new", credentials.JWK{Kty: "oct", Kid: "k1"}), "issuers[acme/new].jwks.keys[0].k", "k1"},
	} {
		_, err := s.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{c.is}}, credentials.ApplyOptions{})
		wantCode(t, err, credentials.EInvalid)
		if credentials.ErrorField(err) != c.field || credentials.ErrorMessage(err) != fmt.Sprintf("required: no stored key of this issuer has kid %q", c.kid) {
			t.Fatalf("error %v: want field %s", err, c.field)
		}
	}
	// A kept secret must still fit the algorithms.
	hs384 := upd
	hs384.Algorithms = []string{"EdDSA"}
	_, err := s.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{hs384}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.EInvalid)
}

func TestIssuerRequiredClaimsStayIdempotent(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{})
	is := edIssuer("acme", "idp")
	is.RequiredClaims = map[string]any{"token_type": "access", "level": json.Number("2"), "mfa": true}
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Issuers: []credentials.Issuer{is}})
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{is}}); res.Changed {
		t.Fatalf("identical upsert: %+v", res)
	}
	s.Close()
	s = open(t, path, Options{})
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{is}}); res.Changed {
		t.Fatalf("identical upsert after reopen: %+v", res)
	}
	is.RequiredClaims["level"] = 3.0
	if res := mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{is}}); !res.Changed {
		t.Fatalf("changed claim: %+v", res)
	}
}

// storedJTIs returns the jtis in the revocations bucket, expired or not.
func storedJTIs(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketRevocations); b != nil {
			b.ForEach(func(k, _ []byte) error { out = append(out, string(k)); return nil })
		}
		return nil
	})
	return out
}

func jtis(list []credentials.Revocation) []string {
	var out []string
	for _, r := range list {
		out = append(out, r.JTI)
	}
	return out
}

func TestRevocations(t *testing.T) {
	clk := newClock()
	path := dbPath(t)
	s := open(t, path, Options{Now: clk.Now})
	t0 := clk.Now()
	rev := func(jti string, d time.Duration) credentials.Revocation {
		return credentials.Revocation{JTI: jti, ExpiresAt: t0.Add(d)}
	}
	res := mustApply(t, s, &credentials.Changes{Revocations: []credentials.Revocation{rev("j2", 2*time.Hour), rev("j1", time.Hour), rev("old", -time.Hour)}})
	if res.Revision != 1 || !cmp.Equal(res.Summary, map[string]map[string]int{"revocations": {"added": 2}}) {
		t.Fatalf("add: %+v", res)
	}
	list, err := s.Revocations(ctx)
	want := []credentials.Revocation{{JTI: "j1", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}, {JTI: "j2", ExpiresAt: t0.Add(2 * time.Hour), CreatedAt: t0}}
	if err != nil || !cmp.Equal(list, want) {
		t.Fatalf("Revocations: %v\n%s", err, cmp.Diff(want, list))
	}

	// The same or an earlier expiry changes nothing; a later one moves it.
	clk.Add(time.Minute)
	if res := mustApply(t, s, &credentials.Changes{Revocations: []credentials.Revocation{rev("j1", time.Hour), rev("j2", time.Minute)}}); res.Changed {
		t.Fatalf("same or earlier expiry: %+v", res)
	}
	res = mustApply(t, s, &credentials.Changes{Revocations: []credentials.Revocation{rev("j1", 3*time.Hour)}})
	if !res.Changed || res.Revision != 2 {
		t.Fatalf("later expiry: %+v", res)
	}
	list, _ = s.Revocations(ctx)
	if !list[0].ExpiresAt.Equal(t0.Add(3*time.Hour)) || !list[0].CreatedAt.Equal(t0) {
		t.Fatalf("merged: %+v", list[0])
	}
	_, err = s.Apply(ctx, &credentials.Changes{Revocations: []credentials.Revocation{{JTI: "x"}}}, credentials.ApplyOptions{})
	if wantCode(t, err, credentials.EInvalid); credentials.ErrorField(err) != "revocations[0].expires_at" {
		t.Fatalf("field of %v", err)
	}

	// Replace never deletes revocations.
	res = mustApply(t, s, &credentials.Changes{Replace: true, Tenants: []credentials.Tenant{tenant("acme")}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"tenants": {"upserted": 1}}) {
		t.Fatalf("replace: %+v", res)
	}
	if list, _ := s.Revocations(ctx); !cmp.Equal(jtis(list), []string{"j1", "j2"}) {
		t.Fatalf("after replace: %v", jtis(list))
	}

	// Once j2 has expired, reads skip it; pruning alone is no change, and
	// the next committed change deletes it from the file.
	clk.Add(2 * time.Hour)
	if list, _ := s.Revocations(ctx); !cmp.Equal(jtis(list), []string{"j1"}) {
		t.Fatalf("after expiry: %v", jtis(list))
	}
	ex, _ := s.Export(ctx)
	if !cmp.Equal(jtis(ex.Revocations), []string{"j1"}) {
		t.Fatalf("export: %v", jtis(ex.Revocations))
	}
	if res := mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}}); res.Changed || res.Revision != 3 {
		t.Fatalf("no change: %+v", res)
	}
	if got := storedJTIs(t, s); !cmp.Equal(got, []string{"j1", "j2"}) {
		t.Fatalf("stored before a commit: %v", got)
	}
	// An expired jti added again is new.
	res = mustApply(t, s, &credentials.Changes{Revocations: []credentials.Revocation{rev("j2", 8*time.Hour)}})
	if !res.Changed || res.Revision != 4 {
		t.Fatalf("re-add: %+v", res)
	}
	if list, _ := s.Revocations(ctx); len(list) != 2 || !list[1].CreatedAt.Equal(clk.Now()) {
		t.Fatalf("re-added: %+v", list)
	}
	clk.Add(4 * time.Hour) // j1 expires
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("beta")}})
	if got := storedJTIs(t, s); !cmp.Equal(got, []string{"j2"}) {
		t.Fatalf("stored after a commit: %v", got)
	}

	// The export round trip changes nothing; the records survive a reopen.
	ex, _ = s.Export(ctx)
	ch, err := ex.Changes(true)
	if err != nil {
		t.Fatal(err)
	}
	if res := mustApply(t, s, ch); res.Changed {
		t.Fatalf("export round trip: %+v", res)
	}
	before, _ := s.Revocations(ctx)
	s.Close()
	s = open(t, path, Options{Now: clk.Now})
	if after, _ := s.Revocations(ctx); !cmp.Equal(before, after) {
		t.Fatalf("reopened: %v, want %v", after, before)
	}
}

func TestRevokeTokensOf(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Clients: []credentials.Client{client("cl_a", "acme"), client("cl_b", "acme")}})
	res := mustApply(t, s, &credentials.Changes{RevokeTokensOf: []string{"cl_a", "cl_a"}})
	if res.Revision != 2 || !cmp.Equal(res.Summary, map[string]map[string]int{"token_versions": {"incremented": 1}}) {
		t.Fatalf("revoke: %+v", res)
	}
	if c, _ := s.Client(ctx, "cl_a"); c.TokenVersion != 1 {
		t.Fatalf("token_version %d, want 1", c.TokenVersion)
	}
	// Revoking again always changes.
	if res := mustApply(t, s, &credentials.Changes{RevokeTokensOf: []string{"cl_a"}}); res.Revision != 3 {
		t.Fatalf("revoke again: %+v", res)
	}
	// An upsert keeps the stored version; a revoke in the same batch
	// increments the upserted record.
	c := client("cl_a", "acme")
	if res := mustApply(t, s, &credentials.Changes{Clients: []credentials.Client{c}}); res.Changed {
		t.Fatalf("upsert without token_version: %+v", res)
	}
	c.Name = "renamed"
	res = mustApply(t, s, &credentials.Changes{Clients: []credentials.Client{c}, RevokeTokensOf: []string{"cl_a"}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"clients": {"upserted": 1}, "token_versions": {"incremented": 1}}) {
		t.Fatalf("upsert and revoke: %+v", res)
	}
	if got, _ := s.Client(ctx, "cl_a"); got.TokenVersion != 3 || got.Name != "renamed" {
		t.Fatalf("after upsert and revoke: %+v", got)
	}
	// A new client revoked in its own batch.
	res = mustApply(t, s, &credentials.Changes{Clients: []credentials.Client{client("cl_new", "acme")}, RevokeTokensOf: []string{"cl_new"}})
	if got, _ := s.Client(ctx, "cl_new"); got.TokenVersion != 1 {
		t.Fatalf("new client: %+v", got)
	}
	// Unknown, or deleted in the same batch: not_found, nothing changes.
	rev := res.Revision
	for _, ch := range []*credentials.Changes{
		{RevokeTokensOf: []string{"cl_nope"}},
		{RevokeTokensOf: []string{"cl_b"}, DeleteClients: []string{"cl_b"}},
		{Replace: true, Tenants: []credentials.Tenant{tenant("acme")}, RevokeTokensOf: []string{"cl_b"}},
	} {
		_, err := s.Apply(ctx, ch, credentials.ApplyOptions{})
		wantCode(t, err, credentials.ENotFound)
	}
	if st, _ := s.Status(ctx); st.Revision != rev {
		t.Fatalf("a refused revoke changed the revision: %+v", st)
	}
	// Audit and reopen.
	var e credentials.AuditEntry
	s.db.View(func(tx *bbolt.Tx) error { return json.Unmarshal(tx.Bucket(bucketAudit).Get(u64(2)), &e) })
	if !cmp.Equal(e.IDs["token_versions.incremented"], []string{"cl_a"}) {
		t.Fatalf("audit: %+v", e)
	}
	s.Close()
	s = open(t, path, Options{})
	if got, _ := s.Client(ctx, "cl_a"); got.TokenVersion != 3 {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestStoreWithoutJWTBucketsOpens(t *testing.T) {
	// A file written before issuers and revocations existed.
	path := dbPath(t)
	s := open(t, path, Options{})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}})
	s.Close()
	editFile(t, path, func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bucketIssuers); err != nil {
			return err
		}
		return tx.DeleteBucket(bucketRevocations)
	})
	before := fileSum(t, path)
	s = open(t, path, Options{MasterKey: testMasterKey})
	if fileSum(t, path) != before {
		t.Fatal("Open wrote to the file")
	}
	if list, err := s.Issuers(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("Issuers: %v %v", list, err)
	}
	if list, err := s.Revocations(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Revocations: %v %v", list, err)
	}
	if ex, err := s.Export(ctx); err != nil || len(ex.Tenants) != 1 {
		t.Fatalf("Export: %+v %v", ex, err)
	}
	mustApply(t, s, &credentials.Changes{
		Issuers:     []credentials.Issuer{hsIssuer("acme", "hs", octJWK("k", strings.Repeat("k", 32)))},
		Revocations: []credentials.Revocation{{JTI: "j", ExpiresAt: time.Now().Add(time.Hour)}},
	})
	s.Close()
	s = open(t, path, Options{MasterKey: testMasterKey})
	if list, _ := s.Revocations(ctx); len(list) != 1 {
		t.Fatalf("Revocations after reopen: %v", list)
	}
	if storedSecret(t, s, "acme/hs", 0) == "" {
		t.Fatal("no secret after reopen")
	}
}

func TestIssuerAndRevocationDelta(t *testing.T) {
	// The delta Apply derives the index from carries what changed; an
	// index built from the records agrees with the incremental one.
	clk := newClock()
	s := open(t, dbPath(t), Options{Now: clk.Now, MasterKey: testMasterKey})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Clients: []credentials.Client{client("cl_a", "acme")}})
	old := s.cur.Load()
	ch := &credentials.Changes{
		Issuers:        []credentials.Issuer{hsIssuer("acme", "hs", octJWK("k", strings.Repeat("k", 32))), edIssuer("acme", "ed")},
		Revocations:    []credentials.Revocation{{JTI: "j", ExpiresAt: clk.Now().Add(time.Hour)}},
		RevokeTokensOf: []string{"cl_a"},
	}
	var p *plan
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		p, err = makePlan(old, ch, clk.Now(), s.seal, tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d := p.delta()
	if len(d.Issuers) != 2 || d.Issuers[1].ID() != "acme/hs" || d.Issuers[1].JWKS.Keys[0].K == "" ||
		len(d.Revocations) != 1 || len(d.Clients) != 1 || d.Clients[0].TokenVersion != 1 {
		t.Fatalf("delta: %+v", d)
	}
	mustApply(t, s, ch)
	p = nil
	err = s.db.View(func(tx *bbolt.Tx) error {
		var err error
		p, err = makePlan(s.cur.Load(), &credentials.Changes{Replace: true, Tenants: []credentials.Tenant{tenant("acme")},
			Issuers: []credentials.Issuer{hsIssuer("acme", "hs", credentials.JWK{Kty: "oct", Kid: "k"})}}, clk.Now(), s.seal, tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	data := p.indexData()
	if len(data.Issuers) != 1 || data.Issuers[0].JWKS.Keys[0].K == "" || len(data.Revocations) != 1 || data.Revocations[0].JTI != "j" {
		t.Fatalf("replace index data: %+v", data)
	}
	if !cmp.Equal(p.goneI, []string{"acme/ed"}) || !cmp.Equal(p.goneC, []string{"cl_a"}) {
		t.Fatalf("replace plan: %v %v", p.goneI, p.goneC)
	}
}

func TestJWTRecordFieldsAreStored(t *testing.T) {
	// Issuers are copied and compared through their JSON encoding, and
	// revocations stored as JSON: a field JSON skips would be lost.
	for _, typ := range []reflect.Type{reflect.TypeFor[credentials.Issuer](), reflect.TypeFor[credentials.JWKS](),
		reflect.TypeFor[credentials.JWK](), reflect.TypeFor[credentials.Revocation]()} {
		for f := range typ.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == "-" || name == "" || !f.IsExported() {
				t.Errorf("%s.%s is not encoded by name in JSON", typ, f.Name)
			}
		}
	}
}

// Issuers that share an iss value must each name their tenant through
// tenant_claim; otherwise a token of that IdP would be accepted for
// whichever tenant's issuer sorts first.
func TestIssuersSharingIssNeedTenantClaim(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	a, b := edIssuer("acme", "idp"), edIssuer("beta", "idp")
	a.Issuer, b.Issuer = "https://shared.example", "https://shared.example"
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme"), tenant("beta")}, Issuers: []credentials.Issuer{a}})
	rev := s.Index().Revision
	_, err := s.Apply(ctx, &credentials.Changes{Issuers: []credentials.Issuer{b}}, credentials.ApplyOptions{})
	if wantCode(t, err, credentials.EInvalid); credentials.ErrorField(err) != "issuers[beta/idp].tenant_claim" {
		t.Fatalf("field of %v", err)
	}
	if s.Index().Revision != rev {
		t.Fatal("a refused change moved the revision")
	}
	a.TenantClaim, b.TenantClaim = "org", "org"
	mustApply(t, s, &credentials.Changes{Issuers: []credentials.Issuer{a, b}})
}
