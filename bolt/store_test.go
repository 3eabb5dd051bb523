package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bbolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keygate/keygate/credentials"
)

func TestOpenCreatesDirectoryAndFile(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{})
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v, mode %v", err, fi.Mode())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v, mode %v", err, fi.Mode())
	}
	st, err := s.Status(ctx)
	if err != nil || st.Revision != 0 || s.Index() == nil || s.Index().Revision != 0 {
		t.Fatalf("new store: %+v, %v", st, err)
	}
}

func TestCRUDAndRevisions(t *testing.T) {
	clk := newClock()
	core, logs := observer.New(zap.DebugLevel)
	s := open(t, dbPath(t), Options{Now: clk.Now, Logger: zap.New(core)})
	secret := credentials.GenerateAPIKey()
	res := mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme")},
		Clients: []credentials.Client{client("cl_a", "acme")},
		APIKeys: []credentials.APIKey{apiKey("ak_1", "cl_a", secret)},
	})
	want := map[string]map[string]int{"tenants": {"upserted": 1}, "clients": {"upserted": 1}, "apikeys": {"upserted": 1}}
	if res.Revision != 1 || !res.Changed || !cmp.Equal(res.Summary, want) {
		t.Fatalf("first apply: %+v", res)
	}
	if e := lookup(s.Index(), secret); e == nil || e.Identity.KeyID != "ak_1" || s.Index().Revision != 1 {
		t.Fatalf("index after apply: %+v", e)
	}
	t0 := clk.Now()
	k, err := s.APIKey(ctx, "ak_1")
	if err != nil || k.ClientID != "cl_a" || !k.CreatedAt.Equal(t0) || !k.UpdatedAt.Equal(t0) || k.KeySHA256 != digest(secret) {
		t.Fatalf("APIKey: %+v, %v", k, err)
	}

	// The same upsert again changes nothing.
	clk.Add(time.Minute)
	res = mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme")},
		Clients: []credentials.Client{client("cl_a", "acme")},
		APIKeys: []credentials.APIKey{apiKey("ak_1", "cl_a", secret)},
	})
	if res.Revision != 1 || res.Changed {
		t.Fatalf("identical apply: %+v", res)
	}

	// A real change keeps created_at and sets updated_at.
	c := client("cl_a", "acme")
	c.Name, c.TokenVersion = "renamed", 3
	res = mustApply(t, s, &credentials.Changes{Clients: []credentials.Client{c}})
	if res.Revision != 2 || !cmp.Equal(res.Summary, map[string]map[string]int{"clients": {"upserted": 1}}) {
		t.Fatalf("update: %+v", res)
	}
	got, _ := s.Client(ctx, "cl_a")
	if got.Name != "renamed" || got.TokenVersion != 3 || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(clk.Now()) {
		t.Fatalf("client after update: %+v", got)
	}
	// token_version never goes down: an upsert with a lower one is a no-op.
	c.TokenVersion = 1
	if res = mustApply(t, s, &credentials.Changes{Clients: []credentials.Client{c}}); res.Changed || res.Revision != 2 {
		t.Fatalf("lower token_version: %+v", res)
	}
	if got, _ := s.Client(ctx, "cl_a"); got.TokenVersion != 3 {
		t.Fatalf("token_version %d, want 3", got.TokenVersion)
	}

	// Listing.
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("beta")},
		Clients: []credentials.Client{client("cl_b", "beta"), client("cl_0", "acme")},
		APIKeys: []credentials.APIKey{apiKey("ak_0", "cl_a", "zero-zero-zero-zero"), apiKey("ak_2", "cl_b", "two-two-two-two-two")},
	})
	ts, _ := s.Tenants(ctx)
	cs, _ := s.Clients(ctx, "acme")
	ks, _ := s.APIKeys(ctx, "cl_a")
	all, _ := s.APIKeys(ctx, "")
	if len(ts) != 2 || ts[0].Slug != "acme" || len(cs) != 2 || cs[0].ID != "cl_0" || len(ks) != 2 || ks[0].ID != "ak_0" || len(all) != 3 {
		t.Fatalf("lists: %v %v %v %v", ts, cs, ks, all)
	}
	st, _ := s.Status(ctx)
	if st.Revision != 3 || st.Counts != (credentials.Counts{Tenants: 2, Clients: 3, APIKeys: 3}) || st.Active.APIKeys != 3 || !st.Updated.Equal(clk.Now()) {
		t.Fatalf("status: %+v", st)
	}

	// Delete.
	res = mustApply(t, s, &credentials.Changes{DeleteAPIKeys: []string{"ak_1"}})
	if res.Revision != 4 || lookup(s.Index(), secret) != nil {
		t.Fatalf("delete: %+v", res)
	}
	if _, err := s.APIKey(ctx, "ak_1"); credentials.ErrorCode(err) != credentials.ENotFound {
		t.Fatalf("deleted key: %v", err)
	}
	for _, f := range []func() error{
		func() error { _, err := s.Tenant(ctx, "nope"); return err },
		func() error { _, err := s.Client(ctx, "cl_nope"); return err },
	} {
		wantCode(t, f(), credentials.ENotFound)
	}

	// Audit log: one entry per revision, no digests.
	var audit []credentials.AuditEntry
	s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(digest(secret))) {
				t.Errorf("audit entry holds a digest: %s", v)
			}
			var e credentials.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				t.Fatal(err)
			}
			audit = append(audit, e)
			return nil
		})
	})
	if len(audit) != 4 || audit[0].Revision != 1 || audit[0].Actor != "test" || !cmp.Equal(audit[0].IDs["apikeys.upserted"], []string{"ak_1"}) ||
		!cmp.Equal(audit[3].IDs["apikeys.deleted"], []string{"ak_1"}) {
		t.Fatalf("audit: %+v", audit)
	}
	// Debug log: one line per committed change, no digest (admin logs it at Info).
	entries := logs.FilterMessage("credentials changed").All()
	if len(entries) != 4 || entries[3].ContextMap()["revision"] != uint64(4) || entries[3].ContextMap()["actor"] != "test" {
		t.Fatalf("log: %+v", entries)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), digest(secret)) {
			t.Fatal("digest in log")
		}
	}
}

func TestSnapshotIsIdempotentAndExportRoundTrips(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	keys := []credentials.APIKey{{ID: "ak_1", Key: "plaintext-imported-key-1"}, {ID: "ak_2", KeySHA256: strings.ToUpper(digest("two")), ExpiresAt: &exp, Scopes: []string{"read:x"}}}
	doc := &credentials.Snapshot{
		Tenants: []credentials.Tenant{tenant("acme"), {Slug: "off", Disabled: true}},
		Clients: []credentials.SnapshotClient{
			{Client: client("cl_a", "acme"), APIKeys: &keys},
			{Client: credentials.Client{ID: "cl_b", Tenant: "off", AllowedCIDRs: []string{"10.0.0.0/8"}, RateLimit: "10/second", Roles: []string{"admin"}}},
		},
	}
	apply := func() credentials.ApplyResult {
		ch, err := doc.Changes(true)
		if err != nil {
			t.Fatal(err)
		}
		return mustApply(t, s, ch)
	}
	if res := apply(); res.Revision != 1 || !res.Changed {
		t.Fatalf("first: %+v", res)
	}
	if res := apply(); res.Revision != 1 || res.Changed {
		t.Fatalf("second: %+v", res)
	}
	if e := lookup(s.Index(), "plaintext-imported-key-1"); e == nil || e.Identity.KeyID != "ak_1" {
		t.Fatal("imported plaintext key not found by its digest")
	}
	ex, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(ex)
	if bytes.Contains(data, []byte("plaintext-imported-key-1")) || bytes.Contains(data, []byte("last_used")) {
		t.Fatalf("export holds a secret or last use: %s", data)
	}
	var back credentials.Snapshot
	if err := credentials.DecodeStrict(data, &back); err != nil {
		t.Fatal(err)
	}
	ch, err := back.Changes(true)
	if err != nil {
		t.Fatal(err)
	}
	if res := mustApply(t, s, ch); res.Changed || res.Revision != 1 {
		t.Fatalf("export round trip changed the store: %+v", res)
	}
	if len(ex.Clients) != 2 || ex.Clients[0].ID != "cl_a" || len(*ex.Clients[0].APIKeys) != 2 || (*ex.Clients[0].APIKeys)[1].ID != "ak_2" ||
		!(*ex.Clients[0].APIKeys)[1].ExpiresAt.Equal(exp) || len(*ex.Clients[1].APIKeys) != 0 {
		t.Fatalf("export: %s", data)
	}
	// A snapshot without cl_b deletes it.
	doc.Tenants, doc.Clients = doc.Tenants[:1], doc.Clients[:1]
	if res := apply(); res.Revision != 2 || !cmp.Equal(res.Summary, map[string]map[string]int{"tenants": {"deleted": 1}, "clients": {"deleted": 1}}) {
		t.Fatalf("smaller snapshot: %+v", res)
	}
}

func TestIfMatch(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	mustApply(t, s, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}})
	idx := s.Index()
	stale := uint64(0)
	res, err := s.Apply(ctx, &credentials.Changes{Tenants: []credentials.Tenant{tenant("beta")}}, credentials.ApplyOptions{IfMatch: &stale})
	wantCode(t, err, credentials.EPrecondition)
	if res.Revision != 1 || s.Index() != idx {
		t.Fatalf("412 changed something: %+v", res)
	}
	if _, err := s.Tenant(ctx, "beta"); credentials.ErrorCode(err) != credentials.ENotFound {
		t.Fatal("412 wrote the tenant")
	}
	cur := uint64(1)
	res, err = s.Apply(ctx, &credentials.Changes{Tenants: []credentials.Tenant{tenant("beta")}}, credentials.ApplyOptions{IfMatch: &cur})
	if err != nil || res.Revision != 2 {
		t.Fatalf("matching If-Match: %+v, %v", res, err)
	}
}

func TestInvalidRecordInLargeSnapshotWritesNothing(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{})
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme")},
		Clients: []credentials.Client{client("cl_a", "acme")},
		APIKeys: []credentials.APIKey{apiKey("ak_old", "cl_a", "old-key-secret-0001")},
	})
	idx := s.Index()
	before := fileSum(t, path)
	keys := genKeys("n", "cl_a", 100_000)

	cases := []struct {
		name, field, msg string
		mutate           func([]credentials.APIKey)
	}{
		{"bad digest", "apikeys[ak_n54321].key_sha256", "64 hex", func(k []credentials.APIKey) { k[54321].KeySHA256 = "zz" }},
		{"unknown client", "apikeys[ak_n77777].client_id", `"cl_missing"`, func(k []credentials.APIKey) { k[77777].ClientID = "cl_missing" }},
		{"duplicate digest", "apikeys[ak_n99999].key_sha256", `"ak_n12"`, func(k []credentials.APIKey) { k[99999].KeySHA256 = k[12].KeySHA256 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks := append([]credentials.APIKey(nil), keys...)
			tc.mutate(ks)
			res, err := s.Apply(ctx, &credentials.Changes{
				Replace: true,
				Tenants: []credentials.Tenant{tenant("acme")},
				Clients: []credentials.Client{client("cl_a", "acme")},
				APIKeys: ks,
			}, credentials.ApplyOptions{})
			wantCode(t, err, credentials.EInvalid)
			if credentials.ErrorField(err) != tc.field || !strings.Contains(credentials.ErrorMessage(err), tc.msg) {
				t.Fatalf("error %v: want field %s, message with %s", err, tc.field, tc.msg)
			}
			if res.Revision != 1 || s.Index() != idx || s.Index().Revision != 1 {
				t.Fatalf("revision after failed apply: %+v", res)
			}
			if lookup(s.Index(), "old-key-secret-0001") == nil || lookup(s.Index(), "n-1-secret") != nil {
				t.Fatal("index changed")
			}
		})
	}
	if fileSum(t, path) != before {
		t.Fatal("failed applies wrote to the file")
	}
	// Apply of a duplicate digest against an existing key (not a snapshot).
	_, err := s.Apply(ctx, &credentials.Changes{APIKeys: []credentials.APIKey{apiKey("ak_dup", "cl_a", "old-key-secret-0001")}}, credentials.ApplyOptions{})
	if credentials.ErrorField(err) != "apikeys[ak_dup].key_sha256" || !strings.Contains(err.Error(), `"ak_old"`) {
		t.Fatalf("duplicate of a stored key: %v", err)
	}
	s.Close()
	s = open(t, path, Options{})
	if st, _ := s.Status(ctx); st.Revision != 1 || st.Counts.APIKeys != 1 {
		t.Fatalf("after reopen: %+v", st)
	}
}

func TestCascadeConflictAndNotFound(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("t1"), tenant("t2")},
		Clients: []credentials.Client{client("cl_1", "t1"), client("cl_2", "t1"), client("cl_3", "t2")},
		APIKeys: []credentials.APIKey{
			apiKey("ak_1", "cl_1", "key-one-secret-xx"), apiKey("ak_2", "cl_1", "key-two-secret-xx"),
			apiKey("ak_3", "cl_2", "key-three-secret-x"),
		},
	})
	fail := func(ch *credentials.Changes, code, field, msg string) {
		t.Helper()
		_, err := s.Apply(ctx, ch, credentials.ApplyOptions{})
		wantCode(t, err, code)
		if credentials.ErrorField(err) != field || !strings.Contains(credentials.ErrorMessage(err), msg) {
			t.Fatalf("%v: want field %q and %q in the message", err, field, msg)
		}
		if s.Index().Revision != 1 {
			t.Fatal("a failed apply changed the revision")
		}
	}
	fail(&credentials.Changes{DeleteTenants: []string{"t1"}}, credentials.EConflict, "", `"t1"`)
	fail(&credentials.Changes{DeleteTenants: []string{"nope"}}, credentials.ENotFound, "", `"nope"`)
	fail(&credentials.Changes{DeleteClients: []string{"cl_nope"}}, credentials.ENotFound, "", `"cl_nope"`)
	fail(&credentials.Changes{DeleteAPIKeys: []string{"ak_nope"}}, credentials.ENotFound, "", `"ak_nope"`)
	fail(&credentials.Changes{Clients: []credentials.Client{client("cl_x", "ghost")}}, credentials.EInvalid, "clients[cl_x].tenant", `"ghost"`)
	fail(&credentials.Changes{APIKeys: []credentials.APIKey{apiKey("ak_x", "cl_ghost", "ghost-key-secret-x")}}, credentials.EInvalid, "apikeys[ak_x].client_id", `"cl_ghost"`)
	fail(&credentials.Changes{APIKeys: []credentials.APIKey{{ID: "ak_x", KeySHA256: digest("a-new-key-secret")}}}, credentials.EInvalid, "apikeys[ak_x].client_id", "needs a client")
	fail(&credentials.Changes{APIKeys: []credentials.APIKey{apiKey("ak_x", "cl_1", "same"), apiKey("ak_y", "cl_1", "same")}}, credentials.EInvalid, "apikeys[ak_y].key_sha256", `"ak_x"`)
	fail(&credentials.Changes{Tenants: []credentials.Tenant{{Slug: "Bad Slug"}}}, credentials.EInvalid, "tenants[0].slug", "must match")
	// A key upserted under a client deleted in the same batch.
	fail(&credentials.Changes{DeleteClients: []string{"cl_2"}, APIKeys: []credentials.APIKey{apiKey("ak_3", "cl_2", "key-three-secret-x")}}, credentials.EInvalid, "apikeys[ak_3].client_id", `"cl_2"`)

	// Deleting a client deletes its keys.
	res := mustApply(t, s, &credentials.Changes{DeleteClients: []string{"cl_1"}})
	if !cmp.Equal(res.Summary, map[string]map[string]int{"clients": {"deleted": 1}, "apikeys": {"deleted": 2}}) || lookup(s.Index(), "key-one-secret-xx") != nil {
		t.Fatalf("cascade: %+v", res)
	}
	// ReplaceKeysOf deletes the client's keys not listed.
	res = mustApply(t, s, &credentials.Changes{ReplaceKeysOf: []string{"cl_2"}, APIKeys: []credentials.APIKey{apiKey("ak_4", "cl_2", "key-four-secret-x")}})
	if ks, _ := s.APIKeys(ctx, "cl_2"); len(ks) != 1 || ks[0].ID != "ak_4" {
		t.Fatalf("replace keys of: %+v %+v", res, ks)
	}
	// A digest may move from one key to another in one batch.
	mustApply(t, s, &credentials.Changes{APIKeys: []credentials.APIKey{apiKey("ak_4", "cl_2", "rotated-secret-xx"), apiKey("ak_5", "cl_2", "key-four-secret-x")}})
	if e := lookup(s.Index(), "key-four-secret-x"); e == nil || e.Identity.KeyID != "ak_5" {
		t.Fatal("digest did not move")
	}
	// A tenant and its clients deleted in one batch.
	mustApply(t, s, &credentials.Changes{DeleteTenants: []string{"t1"}, DeleteClients: []string{"cl_2"}})
	st, _ := s.Status(ctx)
	if st.Counts != (credentials.Counts{Tenants: 1, Clients: 1}) {
		t.Fatalf("status: %+v", st)
	}
	// The digest index on disk matches after all that.
	s.Close()
	s = open(t, s.Path(), Options{})
	if st2, _ := s.Status(ctx); st2.Revision != st.Revision {
		t.Fatalf("reopen: %+v", st2)
	}
}

func TestRecordFields(t *testing.T) {
	// sameTenant, sameClient, sameKey and sameHMACKey must compare every field an
	// upsert sets. When a record gains a field, update them and this test.
	for _, c := range []struct {
		typ  reflect.Type
		want int
	}{
		{reflect.TypeFor[credentials.Tenant](), 5},
		{reflect.TypeFor[credentials.Client](), 12},
		{reflect.TypeFor[credentials.APIKey](), 12},
		{reflect.TypeFor[credentials.HMACKey](), 10},
	} {
		if c.typ.NumField() != c.want {
			t.Errorf("%s has %d fields, the store compares %d", c.typ, c.typ.NumField(), c.want)
		}
	}
}

func TestReopenKeepsEverythingIncludingUsage(t *testing.T) {
	clk := newClock()
	path := dbPath(t)
	s, err := Open(path, Options{Now: clk.Now, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	secret := credentials.GenerateAPIKey()
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme")},
		Clients: []credentials.Client{client("cl_a", "acme")},
		APIKeys: []credentials.APIKey{apiKey("ak_1", "cl_a", secret), apiKey("ak_2", "cl_a", "unused-key-secret")},
	})
	chk := &credentials.Checker{Source: s, Now: clk.Now}
	ip := netip.MustParseAddr("10.1.2.3")
	d, err := chk.Check(ctx, &credentials.Request{Policy: credentials.DefaultPolicy, APIKey: secret, HasAPIKey: true, SourceIP: ip})
	if err != nil || !d.Allowed() {
		t.Fatalf("check: %+v %v", d, err)
	}
	// Pending use is visible before a flush.
	if k, _ := s.APIKey(ctx, "ak_1"); k.LastUsedAt == nil || !k.LastUsedAt.Equal(clk.Now()) || k.LastUsedIP != "10.1.2.3" {
		t.Fatalf("pending use: %+v", k)
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx); st.Revision != 1 {
		t.Fatalf("flush changed the revision: %+v", st)
	}
	clk.Add(time.Hour)
	chk.Check(ctx, &credentials.Request{Policy: credentials.DefaultPolicy, APIKey: secret, HasAPIKey: true, SourceIP: netip.MustParseAddr("10.9.9.9")})
	before, _ := s.Export(ctx)
	if err := s.Close(); err != nil { // flushes the second use
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	_, err = s.Apply(ctx, &credentials.Changes{Tenants: []credentials.Tenant{tenant("x")}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.EUnavailable)

	s = open(t, path, Options{})
	after, _ := s.Export(ctx)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("export after reopen (-before +after):\n%s", diff)
	}
	k, _ := s.APIKey(ctx, "ak_1")
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(clk.Now()) || k.LastUsedIP != "10.9.9.9" {
		t.Fatalf("usage after reopen: %+v", k)
	}
	if k, _ := s.APIKey(ctx, "ak_2"); k.LastUsedAt != nil {
		t.Fatalf("unused key has a last use: %+v", k)
	}
	var audits int
	s.db.View(func(tx *bbolt.Tx) error { audits = tx.Bucket(bucketAudit).Stats().KeyN; return nil })
	if st, _ := s.Status(ctx); st.Revision != 1 || audits != 1 {
		t.Fatalf("revision %d, %d audit entries after usage flushes", st.Revision, audits)
	}
}

func TestBackgroundFlush(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{FlushInterval: time.Millisecond})
	secret := "background-flush-key"
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme")},
		Clients: []credentials.Client{client("cl_a", "acme")},
		APIKeys: []credentials.APIKey{apiKey("ak_1", "cl_a", secret)},
	})
	lookup(s.Index(), secret).Usage.Record(time.Unix(1_700_000_000, 0), netip.Addr{})
	// Wait for the flusher's write (polling the file, not sleeping blind).
	for deadline := time.Now().Add(10 * time.Second); ; {
		var v []byte
		s.db.View(func(tx *bbolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketUsage).Get([]byte("ak_1"))); return nil })
		if v != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background flusher wrote nothing")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentChecksSeeOneRevision(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	const revisions, perRev = 40, 20
	stable := "stable-key-present-in-every-revision"
	secretOf := func(rev, i int) string { return "rev-" + itoa(rev) + "-key-" + itoa(i) }
	var done atomic.Bool
	var wg sync.WaitGroup
	var seen [revisions + 1]atomic.Bool
	errs := make(chan string, 16)
	chk := &credentials.Checker{Source: s}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for last := false; !last; {
				last = done.Load()
				idx := s.Index()
				n := int(idx.Revision)
				if n == 0 {
					continue
				}
				seen[n].Store(true)
				if idx.Len() != perRev+1 {
					errs <- "revision " + itoa(n) + " has " + itoa(idx.Len()) + " keys"
					return
				}
				for i := range perRev {
					if e := lookup(idx, secretOf(n, i)); e == nil || e.Identity.KeyID != "ak_r"+itoa(n)+"_"+itoa(i) {
						errs <- "revision " + itoa(n) + " lacks its key " + itoa(i)
						return
					}
				}
				if n > 1 && lookup(idx, secretOf(n-1, 0)) != nil {
					errs <- "revision " + itoa(n) + " holds a key of revision " + itoa(n-1)
					return
				}
				d, err := chk.Check(ctx, &credentials.Request{Policy: credentials.DefaultPolicy, APIKey: stable, HasAPIKey: true})
				if err != nil || !d.Allowed() {
					errs <- "check of the stable key: " + d.Reason
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // usage flushes race with applies and checks
		defer wg.Done()
		for !done.Load() {
			if err := s.FlushUsage(ctx); err != nil {
				errs <- err.Error()
				return
			}
		}
	}()
	for rev := 1; rev <= revisions; rev++ {
		keys := []credentials.APIKey{apiKey("ak_stable", "cl_a", stable)}
		for i := range perRev {
			keys = append(keys, apiKey("ak_r"+itoa(rev)+"_"+itoa(i), "cl_a", secretOf(rev, i)))
		}
		res := mustApply(t, s, &credentials.Changes{
			Replace: true,
			Tenants: []credentials.Tenant{tenant("acme")},
			Clients: []credentials.Client{client("cl_a", "acme")},
			APIKeys: keys,
		})
		if res.Revision != uint64(rev) {
			t.Fatalf("revision %d, want %d", res.Revision, rev)
		}
		// The next Check after Apply returns sees the new revision.
		if s.Index().Revision != uint64(rev) || lookup(s.Index(), secretOf(rev, 0)) == nil {
			t.Fatal("apply returned before publishing its index")
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if !seen[revisions].Load() {
		t.Error("readers never saw the last revision")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestBackupOpens(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("acme")},
		Clients: []credentials.Client{client("cl_a", "acme")},
		APIKeys: genKeys("b", "cl_a", 500),
	})
	mustApply(t, s, &credentials.Changes{DeleteAPIKeys: []string{"ak_b7"}})
	var buf bytes.Buffer
	n, err := s.Backup(ctx, &buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("backup: %d, %v", n, err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := open(t, path, Options{})
	want, _ := s.Status(ctx)
	got, _ := b.Status(ctx)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("status of the backup (-want +got):\n%s", diff)
	}
	e1, _ := s.Export(ctx)
	e2, _ := b.Export(ctx)
	if !cmp.Equal(e1, e2) {
		t.Fatal("backup exports differently")
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := dbPath(t)
	open(t, path, Options{})
	_, err := Open(path, Options{FlushInterval: -1})
	if err == nil || !strings.Contains(err.Error(), "store "+path+" is locked by another process") {
		t.Fatalf("second open: %v", err)
	}
}

func TestCloseIsIdempotentAndConcurrent(t *testing.T) {
	s, err := Open(dbPath(t), Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wantCode(t, s.FlushUsage(ctx), credentials.EUnavailable)
	if _, err = s.Tenants(ctx); err != nil {
		t.Fatalf("in-memory read after Close: %v", err)
	}
	_, err = s.APIKeys(ctx, "") // API keys are read from the file
	wantCode(t, err, credentials.EUnavailable)
}

func TestCancelledContext(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Apply(c, &credentials.Changes{Tenants: []credentials.Tenant{tenant("acme")}}, credentials.ApplyOptions{})
	wantCode(t, err, credentials.EUnavailable)
	_, err = s.Backup(c, io.Discard)
	wantCode(t, err, credentials.EUnavailable)
	if st, _ := s.Status(ctx); st.Revision != 0 {
		t.Fatalf("cancelled apply committed: %+v", st)
	}
}

// TestCreateRefusesExistingIDs: a create (POST) checks in the writing
// transaction that its IDs are free, so two racing creates cannot both
// succeed and one silently replace the other.
func TestCreateRefusesExistingIDs(t *testing.T) {
	s := open(t, dbPath(t), Options{})
	ctx := context.Background()
	base := &credentials.Changes{
		Tenants: []credentials.Tenant{{Slug: "acme"}},
		Clients: []credentials.Client{{ID: "cl_a", Tenant: "acme"}},
		APIKeys: []credentials.APIKey{{ID: "ak_a", ClientID: "cl_a", KeySHA256: digest("a")}},
	}
	if _, err := s.Apply(ctx, base, credentials.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	rev := s.Index().Revision
	for _, ch := range []*credentials.Changes{
		{Create: true, Clients: []credentials.Client{{ID: "cl_a", Tenant: "acme", Name: "replaced"}}},
		{Create: true, APIKeys: []credentials.APIKey{{ID: "ak_a", ClientID: "cl_a", KeySHA256: digest("b")}}},
	} {
		_, err := s.Apply(ctx, ch, credentials.ApplyOptions{})
		if credentials.ErrorCode(err) != credentials.EConflict || credentials.ErrorField(err) != "id" {
			t.Fatalf("create of an existing ID: %v, want conflict on id", err)
		}
	}
	if s.Index().Revision != rev {
		t.Fatal("a refused create changed the store")
	}
	if c, _ := s.Client(ctx, "cl_a"); c.Name != "" {
		t.Fatalf("client replaced: %+v", c)
	}
	// Free IDs are created.
	if _, err := s.Apply(ctx, &credentials.Changes{Create: true, Clients: []credentials.Client{{ID: "cl_b", Tenant: "acme"}},
		APIKeys: []credentials.APIKey{{ID: "ak_b", ClientID: "cl_b", KeySHA256: digest("b")}}}, credentials.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}
