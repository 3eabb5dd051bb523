package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bbolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keygate/keygate/credentials"
)

// hmacSecret returns a 32-byte secret made of c.
func hmacSecret(c byte) []byte { return bytes.Repeat([]byte{c}, 32) }

// hmacKey returns an rfc9421 HMAC key of clientID whose secret is secret
// (nil: none).
func hmacKey(id, clientID string, secret []byte) credentials.HMACKey {
	k := credentials.HMACKey{ID: id, ClientID: clientID, Scheme: credentials.SchemeRFC9421}
	if secret != nil {
		k.Secret = base64.StdEncoding.EncodeToString(secret)
	}
	return k
}

// legacyKey is hmacKey with the timestamp-body scheme.
func legacyKey(id, clientID string, secret []byte) credentials.HMACKey {
	k := hmacKey(id, clientID, secret)
	k.Scheme = credentials.SchemeTimestampBody
	return k
}

// indexHMACKeys returns the HMAC keys of the current state as the index
// gets them (with secrets), by ID.
func indexHMACKeys(s *Store) map[string]credentials.HMACKey {
	out := map[string]credentials.HMACKey{}
	for _, k := range s.cur.Load().indexData().HMACKeys {
		out[k.ID] = k
	}
	return out
}

// hmacSetup opens a store with the master key, tenants acme and beta and
// clients cl_a, cl_b (acme) and cl_c (beta).
func hmacSetup(t *testing.T, o Options) *Store {
	t.Helper()
	if o.MasterKey == nil {
		o.MasterKey = testMasterKey
	}
	s := open(t, dbPath(t), o)
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme"), tenant("beta")},
		Clients: []credentials.Client{client("cl_a", "acme"), client("cl_b", "acme"), client("cl_c", "beta")},
	})
	return s
}

// applyErr applies ch, wants an error of code (and field, when not ""),
// and checks that the revision did not move.
func applyErr(t *testing.T, s *Store, ch *credentials.Changes, code, field string) error {
	t.Helper()
	rev := s.cur.Load().rev
	_, err := s.Apply(ctx, ch, credentials.ApplyOptions{})
	wantCode(t, err, code)
	if field != "" && credentials.ErrorField(err) != field {
		t.Fatalf("error %v: field %q, want %q", err, credentials.ErrorField(err), field)
	}
	if s.cur.Load().rev != rev {
		t.Fatal("a refused change moved the revision")
	}
	return err
}

func TestHMACKeyUpsertGetListDelete(t *testing.T) {
	clk := newClock()
	s := hmacSetup(t, Options{Now: clk.Now})
	k1, k2, k3 := hmacKey("hk_1", "cl_a", hmacSecret('1')), hmacKey("hk_2", "cl_b", hmacSecret('2')), hmacKey("hk_3", "cl_a", hmacSecret('3'))
	k3.Scheme = "" // defaults to rfc9421
	exp := clk.Now().Add(24 * time.Hour).In(time.FixedZone("x", 3600))
	k3.Name, k3.Scopes, k3.ExpiresAt = "ops", []string{"read:x"}, &exp
	res := mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{k3, k2, k1}})
	if res.Revision != 2 || !cmp.Equal(res.Summary, map[string]map[string]int{"hmackeys": {"upserted": 3}}) {
		t.Fatalf("upsert: %+v", res)
	}
	t0 := clk.Now()
	list, err := s.HMACKeys(ctx, "")
	if err != nil || len(list) != 3 || list[0].ID != "hk_1" || list[1].ID != "hk_2" || list[2].ID != "hk_3" {
		t.Fatalf("HMACKeys: %+v %v", list, err)
	}
	if list, _ := s.HMACKeys(ctx, "cl_a"); len(list) != 2 || list[0].ID != "hk_1" || list[1].ID != "hk_3" {
		t.Fatalf("HMACKeys(cl_a): %+v", list)
	}
	if list, err := s.HMACKeys(ctx, "cl_nope"); err != nil || len(list) != 0 {
		t.Fatalf("HMACKeys(cl_nope): %+v %v", list, err)
	}
	got, err := s.HMACKey(ctx, "hk_3")
	expUTC := exp.UTC()
	want := credentials.HMACKey{ID: "hk_3", ClientID: "cl_a", Name: "ops", Scheme: credentials.SchemeRFC9421,
		Scopes: []string{"read:x"}, ExpiresAt: &expUTC, CreatedAt: t0, UpdatedAt: t0}
	if err != nil || !cmp.Equal(*got, want) {
		t.Fatalf("HMACKey: %v\n%s", err, cmp.Diff(want, *got))
	}
	// The result is a copy.
	got.Scopes[0] = "changed"
	if again, _ := s.HMACKey(ctx, "hk_3"); again.Scopes[0] != "read:x" {
		t.Fatal("HMACKey shares memory with the store")
	}
	_, err = s.HMACKey(ctx, "hk_nope")
	wantCode(t, err, credentials.ENotFound)
	if st, _ := s.Status(ctx); st.Counts.HMACKeys != 3 {
		t.Fatalf("status: %+v", st)
	}

	// The same upsert, with or without the secret, changes nothing; a
	// change keeps created_at and the sealed secret.
	clk.Add(time.Minute)
	sealed := s.cur.Load().hmacKeys["hk_3"].sealed
	noSecret := k3
	noSecret.Secret = ""
	for _, k := range []credentials.HMACKey{k3, noSecret} {
		if res := mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{k}}); res.Changed || res.Revision != 2 {
			t.Fatalf("identical upsert: %+v", res)
		}
	}
	changed := noSecret
	changed.Disabled = true
	if res := mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{changed}}); !res.Changed || res.Revision != 3 {
		t.Fatalf("change: %+v", res)
	}
	if got, _ := s.HMACKey(ctx, "hk_3"); !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(clk.Now()) || !got.Disabled {
		t.Fatalf("after change: %+v", got)
	}
	if !bytes.Equal(s.cur.Load().hmacKeys["hk_3"].sealed, sealed) {
		t.Fatal("a kept secret was sealed again")
	}
	// An upsert without client_id keeps the stored client; a new key
	// needs one.
	moved := hmacKey("hk_2", "", nil)
	if res := mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{moved}}); res.Changed {
		t.Fatalf("upsert without client: %+v", res)
	}
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_new", "", hmacSecret('n'))}}, credentials.EInvalid, "hmackeys[hk_new].client_id")
	// The client must exist, in the store or the batch.
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_new", "cl_nope", hmacSecret('n'))}}, credentials.EInvalid, "hmackeys[hk_new].client_id")
	res = mustApply(t, s, &credentials.Changes{Clients: []credentials.Client{client("cl_new", "acme")},
		HMACKeys: []credentials.HMACKey{hmacKey("hk_new", "cl_new", hmacSecret('n'))}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"clients": {"upserted": 1}, "hmackeys": {"upserted": 1}}) {
		t.Fatalf("key with its client: %+v", res)
	}
	// Malformed input names the field.
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("bad", "cl_a", hmacSecret('n'))}}, credentials.EInvalid, "hmackeys[0].id")
	bad := hmacKey("hk_bad", "cl_a", hmacSecret('n'))
	bad.Scheme = "md5"
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{bad}}, credentials.EInvalid, "hmackeys[hk_bad].scheme")
	bad = hmacKey("hk_bad", "cl_a", nil)
	bad.Secret = "not base64!"
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{bad}}, credentials.EInvalid, "hmackeys[hk_bad].secret")
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{k1, k1}}, credentials.EInvalid, "hmackeys[hk_1].id")

	// Delete.
	res = mustApply(t, s, &credentials.Changes{DeleteHMACKeys: []string{"hk_1"}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"hmackeys": {"deleted": 1}}) {
		t.Fatalf("delete: %+v", res)
	}
	_, err = s.HMACKey(ctx, "hk_1")
	wantCode(t, err, credentials.ENotFound)
	applyErr(t, s, &credentials.Changes{DeleteHMACKeys: []string{"hk_1"}}, credentials.ENotFound, "")
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{noSecret}, DeleteHMACKeys: []string{"hk_3"}}, credentials.EInvalid, "delete.hmackeys[0]")

	// The audit log names the keys, never their secrets.
	var entries []string
	s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error { entries = append(entries, string(v)); return nil })
	})
	var e credentials.AuditEntry
	json.Unmarshal([]byte(entries[1]), &e)
	if !cmp.Equal(e.IDs["hmackeys.upserted"], []string{"hk_1", "hk_2", "hk_3"}) {
		t.Fatalf("audit: %s", entries[1])
	}
	if !strings.Contains(entries[len(entries)-1], `"hmackeys.deleted":["hk_1"]`) {
		t.Fatalf("audit: %s", entries[len(entries)-1])
	}

	// Reopened, the keys and secrets are the same.
	path := s.Path()
	before, _ := s.HMACKeys(ctx, "")
	beforeIdx := indexHMACKeys(s)
	s.Close()
	s2 := open(t, path, Options{MasterKey: testMasterKey, Now: clk.Now})
	after, _ := s2.HMACKeys(ctx, "")
	if !cmp.Equal(before, after) {
		t.Fatalf("reopened:\n%s", cmp.Diff(before, after))
	}
	if afterIdx := indexHMACKeys(s2); !cmp.Equal(beforeIdx, afterIdx) {
		t.Fatalf("index data after reopen:\n%s", cmp.Diff(beforeIdx, afterIdx))
	}
	if res := mustApply(t, s2, &credentials.Changes{HMACKeys: []credentials.HMACKey{changed, k2}}); res.Changed {
		t.Fatalf("identical upsert after reopen: %+v", res)
	}
}

func TestHMACSecretsAreEncryptedAtRest(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	s := hmacSetup(t, Options{Logger: zap.New(core)})
	path := s.Path()
	secret := []byte("an HMAC secret of more than 32 bytes, shared with the client")
	k := legacyKey("hk_legacy", "cl_a", secret)
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{k, hmacKey("hk_other", "cl_c", hmacSecret('o'))}})
	if got := indexHMACKeys(s)["hk_legacy"]; got.Secret != k.Secret || got.Scheme != credentials.SchemeTimestampBody {
		t.Fatalf("index data: %+v", got)
	}
	forms := [][]byte{
		secret,
		secret[:16],
		[]byte(base64.StdEncoding.EncodeToString(secret)),
		[]byte(base64.StdEncoding.EncodeToString(secret)[:24]),
		[]byte(base64.RawURLEncoding.EncodeToString(secret)),
		[]byte(fmt.Sprintf("%x", secret)),
	}
	noSecret := func(name string, data []byte) {
		t.Helper()
		for _, f := range forms {
			if bytes.Contains(data, f) {
				t.Fatalf("%s holds the secret (%q)", name, f)
			}
		}
	}

	// Reads return no secret.
	got, err := s.HMACKey(ctx, "hk_legacy")
	if err != nil || got.Secret != "" {
		t.Fatalf("HMACKey: %+v %v", got, err)
	}
	list, _ := s.HMACKeys(ctx, "")
	ex, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"HMACKey": got, "HMACKeys": list, "Export": ex} {
		data, _ := json.Marshal(v)
		noSecret(name, data)
	}
	for _, e := range logs.All() {
		noSecret("log", []byte(fmt.Sprint(e.Message, e.ContextMap())))
	}
	// Export nests the keys under their clients (none: nil).
	for _, c := range ex.Clients {
		switch c.ID {
		case "cl_a":
			if c.HMACKeys == nil || len(*c.HMACKeys) != 1 || (*c.HMACKeys)[0].ID != "hk_legacy" || (*c.HMACKeys)[0].ClientID != "" {
				t.Fatalf("export of cl_a: %+v", c.HMACKeys)
			}
		case "cl_b":
			if c.HMACKeys != nil {
				t.Fatalf("export of cl_b: %+v", *c.HMACKeys)
			}
		}
	}
	// The exported document applies unchanged (the secrets are kept).
	ch, err := ex.Changes(true)
	if err != nil {
		t.Fatal(err)
	}
	if res := mustApply(t, s, ch); res.Changed {
		t.Fatalf("export round trip: %+v", res)
	}
	var backup bytes.Buffer
	if _, err := s.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	noSecret("backup", backup.Bytes())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Neither the file holds the secret in any form; the record holds it
	// sealed.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	noSecret("the store file", data)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bbolt.Tx) error {
		var r hmacKeyRecord
		if err := json.Unmarshal(tx.Bucket(bucketHMACKeys).Get([]byte("hk_legacy")), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Sealed) != 12+len(secret)+16 || r.Key.Secret != "" || r.Key.ID != "hk_legacy" {
			t.Fatalf("record: %+v", r)
		}
		if check := tx.Bucket(bucketMeta).Get(metaKeyCheck); len(check) != 32 {
			t.Fatalf("master key check %x", check)
		}
		return nil
	})
	db.Close()

	// Reopened with the key, the index gets the secret again.
	s2 := open(t, path, Options{MasterKey: testMasterKey})
	if got := indexHMACKeys(s2)["hk_legacy"]; got.Secret != k.Secret {
		t.Fatalf("secret after reopen %q", got.Secret)
	}
	if res := mustApply(t, s2, &credentials.Changes{HMACKeys: []credentials.HMACKey{k}}); res.Changed {
		t.Fatalf("identical upsert with the secret after reopen: %+v", res)
	}
}

func TestHMACUpsertWithoutSecret(t *testing.T) {
	s := hmacSetup(t, Options{})
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('1'))}})
	want := base64.StdEncoding.EncodeToString(hmacSecret('1'))

	// A read-modify-write (the read has no secret) keeps it.
	got, _ := s.HMACKey(ctx, "hk_1")
	got.Name = "renamed"
	if res := mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{*got}}); !res.Changed {
		t.Fatalf("rename: %+v", res)
	}
	if k := indexHMACKeys(s)["hk_1"]; k.Secret != want || k.Name != "renamed" {
		t.Fatalf("after rename: %+v", k)
	}
	// A new secret replaces the stored one (and is sealed again); the same
	// secret in another base64 layout is the same secret.
	sealed := s.cur.Load().hmacKeys["hk_1"].sealed
	upd := *got
	upd.Secret = base64.StdEncoding.EncodeToString(hmacSecret('2'))
	if res := mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{upd}}); !res.Changed {
		t.Fatalf("new secret: %+v", res)
	}
	if k := indexHMACKeys(s)["hk_1"]; k.Secret != upd.Secret || bytes.Equal(s.cur.Load().hmacKeys["hk_1"].sealed, sealed) {
		t.Fatalf("after new secret: %+v", k)
	}
	wrapped := upd
	wrapped.Secret = upd.Secret[:20] + "\r\n" + upd.Secret[20:]
	if res := mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{wrapped}}); res.Changed {
		t.Fatalf("same secret, other layout: %+v", res)
	}
	if k := indexHMACKeys(s)["hk_1"]; k.Secret != upd.Secret {
		t.Fatalf("stored layout: %q", k.Secret)
	}

	// A new key needs a secret.
	err := applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_2", "cl_a", nil)}}, credentials.EInvalid, "hmackeys[hk_2].secret")
	if credentials.ErrorMessage(err) != "required: a new HMAC key needs a secret" {
		t.Fatalf("message: %v", err)
	}
	// A key both upserted (without a secret) and deleted is refused.
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", nil)}, DeleteHMACKeys: []string{"hk_1"}},
		credentials.EInvalid, "delete.hmackeys[0]")
	// Through a snapshot: the nested key of a new client.
	snap := &credentials.Snapshot{Clients: []credentials.SnapshotClient{{Client: client("cl_z", "acme"),
		HMACKeys: &[]credentials.HMACKey{{ID: "hk_z"}}}}}
	ch, err := snap.Changes(false)
	if err != nil {
		t.Fatal(err)
	}
	applyErr(t, s, ch, credentials.EInvalid, "hmackeys[hk_z].secret")
}

func TestHMACKeysNeedAMasterKey(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Clients: []credentials.Client{client("cl_a", "acme")}})
	for _, k := range []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('1')), hmacKey("hk_1", "cl_a", nil)} {
		err := applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{k}}, credentials.EInvalid, "hmackeys[hk_1].secret")
		if credentials.ErrorMessage(err) != "a master key is required to store HMAC keys (start keygate with --master-key-file)" {
			t.Fatalf("message: %v", err)
		}
	}
	// Deleting a client without HMAC keys needs no master key.
	mustApply(t, s, &credentials.Changes{DeleteClients: []string{"cl_a"}})
}

func TestShortHMACSecretIsRefused(t *testing.T) {
	s := hmacSetup(t, Options{})
	short := hmacKey("hk_1", "", hmacSecret('s')[:31])
	// Through the admin path: snapshot document → Changes → Apply.
	batch := &credentials.ChangeBatch{Upsert: credentials.Snapshot{Clients: []credentials.SnapshotClient{{
		Client: client("cl_a", "acme"), HMACKeys: &[]credentials.HMACKey{short}}}}}
	_, err := batch.Changes()
	wantCode(t, err, credentials.EInvalid)
	if f := credentials.ErrorField(err); f != "upsert.clients[0].hmackeys[0].secret" {
		t.Fatalf("field %q of %v", f, err)
	}
	if strings.Contains(err.Error(), short.Secret) {
		t.Fatalf("the error holds the secret: %v", err)
	}
	// Changes built by hand are refused by Apply itself.
	short.ClientID = "cl_a"
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{short}}, credentials.EInvalid, "hmackeys[hk_1].secret")
	// 32 bytes is enough.
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('s'))}})
	// And a secret-less update of it stays valid.
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{{ID: "hk_1", Name: "x"}}})
}

func TestTimestampBodyKeyPerTenant(t *testing.T) {
	s := hmacSetup(t, Options{})
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{legacyKey("hk_a1", "cl_a", hmacSecret('1'))}})

	// A second enabled one in the same tenant, on another client, is
	// refused naming the first.
	err := applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{legacyKey("hk_b1", "cl_b", hmacSecret('2'))}}, credentials.EInvalid, "hmackeys[hk_b1].scheme")
	if !strings.Contains(credentials.ErrorMessage(err), "hk_a1") || !strings.Contains(credentials.ErrorMessage(err), `"acme"`) {
		t.Fatalf("message does not name the other key: %v", err)
	}
	// ... and on the same client.
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{legacyKey("hk_a0", "cl_a", hmacSecret('2'))}}, credentials.EInvalid, "hmackeys[hk_a0].scheme")
	// Two in one batch.
	applyErr(t, s, &credentials.Changes{Clients: []credentials.Client{client("cl_d", "beta")}, HMACKeys: []credentials.HMACKey{
		legacyKey("hk_d1", "cl_d", hmacSecret('3')), legacyKey("hk_d2", "cl_d", hmacSecret('4'))}}, credentials.EInvalid, "hmackeys[hk_d1].scheme")
	// A disabled one, an rfc9421 one, and one in another tenant are fine.
	off := legacyKey("hk_b1", "cl_b", hmacSecret('2'))
	off.Disabled = true
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{off, hmacKey("hk_b2", "cl_b", hmacSecret('5')), legacyKey("hk_c1", "cl_c", hmacSecret('6'))}})
	// Enabling the disabled one is refused; swapping both in one batch is
	// allowed.
	on := off
	on.Disabled, on.Secret = false, ""
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{on}}, credentials.EInvalid, "hmackeys[hk_b1].scheme")
	first := legacyKey("hk_a1", "cl_a", nil)
	first.Disabled = true
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{on, first}})
	// Turning an rfc9421 key into a second legacy key is refused.
	conv := legacyKey("hk_b2", "cl_b", nil)
	applyErr(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{conv}}, credentials.EInvalid, "hmackeys[hk_b2].scheme")
	// A client moving to a tenant that has one takes its key along: refused.
	moved := client("cl_c", "acme")
	applyErr(t, s, &credentials.Changes{Clients: []credentials.Client{moved}}, credentials.EInvalid, "")
	// Replace checks the whole new state.
	applyErr(t, s, &credentials.Changes{Replace: true, Tenants: []credentials.Tenant{tenant("acme")},
		Clients:  []credentials.Client{client("cl_a", "acme")},
		HMACKeys: []credentials.HMACKey{legacyKey("hk_a1", "cl_a", nil), legacyKey("hk_x", "cl_a", hmacSecret('7'))}},
		credentials.EInvalid, "hmackeys[hk_a1].scheme")
}

func TestHMACKeysCascadeAndReplace(t *testing.T) {
	s := hmacSetup(t, Options{})
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{
		hmacKey("hk_a1", "cl_a", hmacSecret('1')), hmacKey("hk_a2", "cl_a", hmacSecret('2')),
		hmacKey("hk_b1", "cl_b", hmacSecret('3')), hmacKey("hk_c1", "cl_c", hmacSecret('4')),
	}})
	plan := func(ch *credentials.Changes) *plan {
		t.Helper()
		var p *plan
		err := s.db.View(func(tx *bbolt.Tx) error {
			var err error
			p, err = makePlan(s.cur.Load(), ch, s.now(), s.seal, tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Deleting a client deletes its HMAC keys, and the delta names them.
	ch := &credentials.Changes{DeleteClients: []string{"cl_a"}}
	if d := plan(ch).delta(); !cmp.Equal(d.DeleteHMACKeys, []string{"hk_a1", "hk_a2"}) {
		t.Fatalf("delta: %+v", d)
	}
	res := mustApply(t, s, ch)
	if !cmp.Equal(res.Summary, map[string]map[string]int{"clients": {"deleted": 1}, "hmackeys": {"deleted": 2}}) {
		t.Fatalf("cascade: %+v", res)
	}
	if list, _ := s.HMACKeys(ctx, ""); len(list) != 2 {
		t.Fatalf("after cascade: %+v", list)
	}
	// A key upserted onto a client deleted in the same batch is refused.
	applyErr(t, s, &credentials.Changes{DeleteClients: []string{"cl_b"}, HMACKeys: []credentials.HMACKey{hmacKey("hk_b1", "cl_b", nil)}},
		credentials.EInvalid, "hmackeys[hk_b1].client_id")

	// A snapshot client with hmackeys replaces that client's keys (and
	// no other's); without hmackeys it leaves them.
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_b2", "cl_b", hmacSecret('5'))}})
	snap := &credentials.Snapshot{Clients: []credentials.SnapshotClient{
		{Client: client("cl_b", "acme"), HMACKeys: &[]credentials.HMACKey{{ID: "hk_b2"}}},
		{Client: client("cl_c", "beta")},
	}}
	ch, err := snap.Changes(false)
	if err != nil {
		t.Fatal(err)
	}
	if d := plan(ch).delta(); !cmp.Equal(d.DeleteHMACKeys, []string{"hk_b1"}) || len(d.HMACKeys) != 0 {
		t.Fatalf("delta: %+v", d)
	}
	res = mustApply(t, s, ch)
	if !cmp.Equal(res.Summary, map[string]map[string]int{"hmackeys": {"deleted": 1}}) {
		t.Fatalf("replace keys of: %+v", res)
	}
	if list, _ := s.HMACKeys(ctx, ""); len(list) != 2 || list[0].ID != "hk_b2" || list[1].ID != "hk_c1" {
		t.Fatalf("after replace keys of: %+v", list)
	}

	// The delta of an upsert carries the secret.
	ch = &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_c2", "cl_c", hmacSecret('6'))}}
	if d := plan(ch).delta(); len(d.HMACKeys) != 1 || d.HMACKeys[0].Secret != base64.StdEncoding.EncodeToString(hmacSecret('6')) {
		t.Fatalf("delta: %+v", d)
	}

	// Replace deletes the keys it does not name; its index data holds the
	// others with their secrets.
	ch = &credentials.Changes{Replace: true, Tenants: []credentials.Tenant{tenant("acme"), tenant("beta")},
		Clients:  []credentials.Client{client("cl_b", "acme"), client("cl_c", "beta")},
		HMACKeys: []credentials.HMACKey{hmacKey("hk_c1", "cl_c", nil)}}
	p := plan(ch)
	if data := p.indexData(); len(data.HMACKeys) != 1 || data.HMACKeys[0].Secret != base64.StdEncoding.EncodeToString(hmacSecret('4')) {
		t.Fatalf("replace index data: %+v", data.HMACKeys)
	}
	if !cmp.Equal(p.goneH, []string{"hk_b2"}) {
		t.Fatalf("replace: gone %v", p.goneH)
	}
	res = mustApply(t, s, ch)
	if !cmp.Equal(res.Summary, map[string]map[string]int{"hmackeys": {"deleted": 1}}) {
		t.Fatalf("replace: %+v", res)
	}
	// A Replace that omits a client deletes its keys.
	res = mustApply(t, s, &credentials.Changes{Replace: true, Tenants: []credentials.Tenant{tenant("acme"), tenant("beta")},
		Clients: []credentials.Client{client("cl_b", "acme")}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"clients": {"deleted": 1}, "hmackeys": {"deleted": 1}}) {
		t.Fatalf("replace without the client: %+v", res)
	}
	if st, _ := s.Status(ctx); st.Counts.HMACKeys != 0 {
		t.Fatalf("status: %+v", st)
	}
}

func TestHMACKeyCreateConflict(t *testing.T) {
	s := hmacSetup(t, Options{})
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('1'))}})
	err := applyErr(t, s, &credentials.Changes{Create: true, HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('2'))}}, credentials.EConflict, "id")
	if !strings.Contains(credentials.ErrorMessage(err), `"hk_1"`) {
		t.Fatalf("message: %v", err)
	}
	if k := indexHMACKeys(s)["hk_1"]; k.Secret != base64.StdEncoding.EncodeToString(hmacSecret('1')) {
		t.Fatal("a refused create changed the secret")
	}
	res := mustApply(t, s, &credentials.Changes{Create: true, HMACKeys: []credentials.HMACKey{hmacKey("hk_2", "cl_a", hmacSecret('2'))}})
	if !res.Changed {
		t.Fatalf("create: %+v", res)
	}
}

func TestHMACMasterKeyIsRequiredAndChecked(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{MasterKey: testMasterKey})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Clients: []credentials.Client{client("cl_a", "acme")},
		HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('1'))}})
	s.Close()
	before := fileSum(t, path)
	if _, err := Open(path, Options{FlushInterval: -1}); !errors.Is(err, ErrMasterKeyRequired) {
		t.Fatalf("Open without a key: %v", err)
	}
	if _, err := Open(path, Options{FlushInterval: -1, MasterKey: otherMasterKey}); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("Open with another key: %v", err)
	}
	if fileSum(t, path) != before {
		t.Fatal("a refused Open modified the file")
	}
	// Without the check value, the sealed secret still needs the key, and
	// another key fails to decrypt it, naming the key.
	editFile(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaKeyCheck) })
	if _, err := Open(path, Options{FlushInterval: -1}); !errors.Is(err, ErrMasterKeyRequired) {
		t.Fatalf("Open without a key or check: %v", err)
	}
	_, err := Open(path, Options{FlushInterval: -1, MasterKey: otherMasterKey})
	if err == nil || !strings.Contains(err.Error(), `HMAC key "hk_1"`) {
		t.Fatalf("Open with another key and no check: %v", err)
	}
}

func TestMovedOrAlteredHMACSecretFailsOpen(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{MasterKey: testMasterKey})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Clients: []credentials.Client{client("cl_a", "acme")},
		HMACKeys: []credentials.HMACKey{hmacKey("hk_a", "cl_a", hmacSecret('a')), hmacKey("hk_b", "cl_a", hmacSecret('b'))}})
	s.Close()

	edit := func(t *testing.T, fn func(a, b *hmacKeyRecord)) string {
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
			bk := tx.Bucket(bucketHMACKeys)
			var a, b hmacKeyRecord
			if err := json.Unmarshal(bk.Get([]byte("hk_a")), &a); err != nil {
				return err
			}
			if err := json.Unmarshal(bk.Get([]byte("hk_b")), &b); err != nil {
				return err
			}
			fn(&a, &b)
			for id, r := range map[string]*hmacKeyRecord{"hk_a": &a, "hk_b": &b} {
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
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(hmacSecret('a'))) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
		if fileSum(t, p) != before {
			t.Fatal("Open modified the file")
		}
		t.Log(err)
	}
	t.Run("moved", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *hmacKeyRecord) { b.Sealed = a.Sealed }), `HMAC key "hk_b"`)
	})
	t.Run("tampered", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *hmacKeyRecord) { a.Sealed[20] ^= 1 }), `HMAC key "hk_a"`)
	})
	t.Run("truncated", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *hmacKeyRecord) { a.Sealed = a.Sealed[:10] }), `HMAC key "hk_a"`)
	})
	t.Run("removed", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *hmacKeyRecord) { a.Sealed = nil }), `HMAC key "hk_a"`)
	})
	t.Run("plaintext", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *hmacKeyRecord) { a.Key.Secret = base64.StdEncoding.EncodeToString(hmacSecret('a')) }), `HMAC key "hk_a"`)
	})
	t.Run("orphan", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *hmacKeyRecord) { a.Key.ClientID = "cl_gone" }), `HMAC key "hk_a"`)
	})
	t.Run("bad scheme", func(t *testing.T) {
		wantOpenError(t, edit(t, func(a, b *hmacKeyRecord) { a.Key.Scheme = "md5" }), `HMAC key "hk_a"`)
	})
	t.Run("unchanged", func(t *testing.T) {
		p := edit(t, func(a, b *hmacKeyRecord) {})
		s := open(t, p, Options{MasterKey: testMasterKey})
		if got := indexHMACKeys(s)["hk_b"]; got.Secret != base64.StdEncoding.EncodeToString(hmacSecret('b')) {
			t.Fatalf("secret %q", got.Secret)
		}
	})
}

func TestStoreWithoutHMACBucketOpens(t *testing.T) {
	// A file written before HMAC keys existed.
	path := dbPath(t)
	s := open(t, path, Options{})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}, Clients: []credentials.Client{client("cl_a", "acme")}})
	s.Close()
	editFile(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketHMACKeys) })
	before := fileSum(t, path)
	s = open(t, path, Options{MasterKey: testMasterKey})
	if fileSum(t, path) != before {
		t.Fatal("Open wrote to the file")
	}
	if list, err := s.HMACKeys(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("HMACKeys: %v %v", list, err)
	}
	mustApply(t, s, &credentials.Changes{HMACKeys: []credentials.HMACKey{hmacKey("hk_1", "cl_a", hmacSecret('1'))}})
	s.Close()
	s = open(t, path, Options{MasterKey: testMasterKey})
	if indexHMACKeys(s)["hk_1"].Secret == "" {
		t.Fatal("no secret after reopen")
	}
}
