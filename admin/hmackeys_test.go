package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/credentials"
)

var hmacKeyIDRE = regexp.MustCompile(`^hk_[0-9A-Za-z]{16}$`)

// randomSecret returns n random bytes as standard base64, the form HMAC
// secrets travel in.
func randomSecret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// decodeJSON decodes an answer body into v.
func decodeJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

// TestHMACKeyCRUD drives every HMAC key route over a real bolt store with
// a master key.
func TestHMACKeyCRUD(t *testing.T) {
	e := newEnvMasterKey(t)
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	e.mustClient("cl_other", "acme")

	// POST without a body: everything generated, the secret answered once.
	st, hdr, b := e.raw("POST", "/v1/clients/cl_app/hmackeys", "-default-", nil)
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	var gen hmacKeyResult
	decodeJSON(t, b, &gen)
	secret, err := base64.StdEncoding.DecodeString(gen.Secret)
	if err != nil || len(secret) != credentials.GeneratedHMACSecret {
		t.Fatalf("generated secret %q: %d bytes, %v", gen.Secret, len(secret), err)
	}
	if !hmacKeyIDRE.MatchString(gen.ID) || gen.ClientID != "cl_app" || gen.Scheme != credentials.SchemeRFC9421 || gen.CreatedAt.IsZero() || gen.Revision == 0 {
		t.Fatalf("create answered %+v", gen)
	}
	if hdr.Get("Location") != "/v1/hmackeys/"+gen.ID || hdr.Get("ETag") != `"`+itoa(gen.Revision)+`"` {
		t.Errorf("Location %q, ETag %q", hdr.Get("Location"), hdr.Get("ETag"))
	}

	// The client with every field; the same ID again is a conflict.
	exp := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	legacy, rev, err := e.client.CreateHMACKey(ctx, "cl_app", credentials.HMACKey{ID: "hk_legacy", Name: "webhooks",
		Scheme: credentials.SchemeTimestampBody, Scopes: []string{"read:projects"}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if legacy.Secret == "" || legacy.Secret == gen.Secret || legacy.Scheme != "timestamp-body" || legacy.Name != "webhooks" ||
		!legacy.ExpiresAt.Equal(exp) || rev != gen.Revision+1 {
		t.Fatalf("CreateHMACKey = %+v, %d", legacy, rev)
	}
	_, _, err = e.client.CreateHMACKey(ctx, "cl_app", credentials.HMACKey{ID: "hk_legacy"})
	if ae := apiErr(t, err, 409, "conflict"); ae.Field != "id" {
		t.Errorf("conflict field %q", ae.Field)
	}
	// Unknown client, malformed client, client_id that is not the path's.
	_, _, err = e.client.CreateHMACKey(ctx, "cl_nobody", credentials.HMACKey{})
	apiErr(t, err, 404, "not_found")
	_, _, err = e.client.CreateHMACKey(ctx, "not-a-client", credentials.HMACKey{})
	apiErr(t, err, 404, "not_found")
	_, _, err = e.client.CreateHMACKey(ctx, "cl_app", credentials.HMACKey{ClientID: "cl_other"})
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "client_id" {
		t.Errorf("client_id mismatch field %q", ae.Field)
	}
	_, _, err = e.client.CreateHMACKey(ctx, "cl_app", credentials.HMACKey{Scheme: "rfc9999"})
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "scheme" {
		t.Errorf("bad scheme field %q", ae.Field)
	}

	// Import: a caller-given secret is not echoed.
	imported := randomSecret(48)
	imp, _, err := e.client.CreateHMACKey(ctx, "cl_other", credentials.HMACKey{ID: "hk_imported", Secret: imported})
	if err != nil || imp.Secret != "" || imp.ClientID != "cl_other" || imp.Scheme != "rfc9421" {
		t.Fatalf("import = %+v, %v", imp, err)
	}

	// Reads never carry a secret.
	got, err := e.client.GetHMACKey(ctx, gen.ID)
	if err != nil || got.Secret != "" || got.ID != gen.ID || got.ClientID != "cl_app" {
		t.Fatalf("GetHMACKey = %+v, %v", got, err)
	}
	for _, p := range []string{"/v1/hmackeys/" + gen.ID, "/v1/hmackeys", "/v1/clients/cl_app/hmackeys", "/v1/snapshot"} {
		st, hdr, b := e.raw("GET", p, "-default-", nil)
		if st != 200 || hdr.Get("ETag") == "" || !bytes.Contains(b, []byte(gen.ID)) {
			t.Fatalf("GET %s: %d %s", p, st, b)
		}
		if bytes.Contains(b, []byte(`"secret":`)) {
			t.Errorf("GET %s answers a secret: %s", p, b)
		}
	}
	all, err := e.client.ListHMACKeys(ctx, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("ListHMACKeys(all) = %+v, %v", all, err)
	}
	mine, err := e.client.ListHMACKeys(ctx, "cl_app")
	if err != nil || len(mine) != 2 {
		t.Fatalf("ListHMACKeys(cl_app) = %+v, %v", mine, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Errorf("list not ordered by ID: %s, %s", all[i-1].ID, all[i].ID)
		}
	}
	_, err = e.client.ListHMACKeys(ctx, "cl_nobody")
	apiErr(t, err, 404, "not_found")
	e.mustClient("cl_empty", "acme")
	if st, _, b := e.raw("GET", "/v1/clients/cl_empty/hmackeys", "-default-", nil); st != 200 || !bytes.Contains(b, []byte(`"hmackeys":[]`)) {
		t.Errorf("empty list: %d %s", st, b)
	}
	if st := e.status(); st.Counts.HMACKeys != 3 {
		t.Errorf("status counts %d HMAC keys, want 3", st.Counts.HMACKeys)
	}

	// PUT without a secret: a read-modify-write that keeps the secret.
	got.Disabled = true
	put, rev1, err := e.client.PutHMACKey(ctx, *got)
	if err != nil || !put.Disabled || put.Secret != "" {
		t.Fatalf("PutHMACKey(disable) = %+v, %v", put, err)
	}
	if _, rev2, err := e.client.PutHMACKey(ctx, *put); err != nil || rev2 != rev1 {
		t.Fatalf("identical PUT: rev %d → %d, %v", rev1, rev2, err)
	}
	put.Disabled = false
	put.ClientID = "" // taken from the stored key
	if put, _, err = e.client.PutHMACKey(ctx, *put); err != nil || put.Disabled || put.ClientID != "cl_app" {
		t.Fatalf("PutHMACKey(enable) = %+v, %v", put, err)
	}
	// A PUT whose body names another ID, client or no secret for a new key.
	st, _, b = e.raw("PUT", "/v1/hmackeys/"+gen.ID, "-default-", []byte(`{"id":"hk_else"}`))
	if eb := errorJSON(t, b); st != 400 || eb.Field != "id" {
		t.Errorf("PUT with another id: %d %+v", st, eb)
	}
	for _, c := range []struct {
		k     credentials.HMACKey
		field string
	}{
		{credentials.HMACKey{ID: gen.ID, ClientID: "cl_other"}, "client_id"},
		{credentials.HMACKey{ID: "hk_new"}, "client_id"},
		{credentials.HMACKey{ID: "hk_new", ClientID: "cl_app"}, "secret"},
		{credentials.HMACKey{ID: "hk_new", ClientID: "cl_app", Secret: "not base64!"}, "secret"},
	} {
		_, _, err := e.client.PutHMACKey(ctx, c.k)
		if ae := apiErr(t, err, 400, "invalid"); ae.Field != c.field {
			t.Errorf("PUT %+v: field %q, want %q", c.k, ae.Field, c.field)
		}
	}
	if _, err := e.client.GetHMACKey(ctx, "hk_new"); err == nil {
		t.Fatal("a refused PUT created hk_new")
	}
	// PUT of a new key with a secret (import by PUT): not echoed.
	viaPut := randomSecret(32)
	np, _, err := e.client.PutHMACKey(ctx, credentials.HMACKey{ID: "hk_new", ClientID: "cl_other", Secret: viaPut})
	if err != nil || np.Secret != "" || np.ClientID != "cl_other" {
		t.Fatalf("PUT new = %+v, %v", np, err)
	}
	// A PUT with a secret replaces it.
	if _, _, err := e.client.PutHMACKey(ctx, credentials.HMACKey{ID: "hk_new", Secret: randomSecret(64)}); err != nil {
		t.Fatal(err)
	}

	// Rotate: same ID, a new secret answered once.
	rot, rrev, err := e.client.RotateHMACKey(ctx, "hk_legacy")
	if err != nil || rot.ID != "hk_legacy" || rot.Secret == "" || rot.Secret == legacy.Secret || rot.Scheme != "timestamp-body" ||
		rot.Name != "webhooks" || !rot.CreatedAt.Equal(legacy.CreatedAt) {
		t.Fatalf("RotateHMACKey = %+v, %v", rot, err)
	}
	if b, err := base64.StdEncoding.DecodeString(rot.Secret); err != nil || len(b) != credentials.GeneratedHMACSecret {
		t.Fatalf("rotated secret: %d bytes, %v", len(b), err)
	}
	if st := e.status(); st.Revision != rrev {
		t.Errorf("revision %d after rotate answered %d", st.Revision, rrev)
	}
	_, _, err = e.client.RotateHMACKey(ctx, "hk_nobody")
	apiErr(t, err, 404, "not_found")
	st, _, b = e.raw("POST", "/v1/hmackeys/hk_legacy/rotate", "-default-", []byte(`{"grace":"1h"}`))
	if eb := errorJSON(t, b); st != 400 || eb.Field != "grace" {
		t.Errorf("rotate with a body field: %d %+v", st, eb)
	}

	// Delete.
	if _, err := e.client.DeleteHMACKey(ctx, gen.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetHMACKey(ctx, gen.ID)
	apiErr(t, err, 404, "not_found")
	_, err = e.client.DeleteHMACKey(ctx, gen.ID)
	apiErr(t, err, 404, "not_found")
	_, err = e.client.GetHMACKey(ctx, "ak_notanhmackey")
	apiErr(t, err, 404, "not_found")
}

// TestHMACSecretTooShort: a secret under 32 bytes (THREATS), over 1024
// bytes or not base64 is refused with 400 naming the secret field, on
// every route that takes one, without echoing it and without writing.
func TestHMACSecretTooShort(t *testing.T) {
	e := newEnvMasterKey(t)
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	before := e.status()
	for _, secret := range []string{randomSecret(31), randomSecret(16), randomSecret(1), randomSecret(1025),
		base64.StdEncoding.EncodeToString([]byte("short-secret")), "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1jbGllbnQ=", "%%%%" + randomSecret(40)} {
		k := credentials.HMACKey{ID: "hk_short", ClientID: "cl_app", Secret: secret}
		check := func(what string, st int, b []byte, field string) {
			t.Helper()
			eb := errorJSON(t, b)
			if st != 400 || eb.Code != "invalid" || eb.Field != field {
				t.Errorf("%s with secret %q: %d %+v, want 400 field %s", what, secret, st, eb, field)
			}
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s echoes the secret: %s", what, b)
			}
		}
		st, _, b := e.raw("POST", "/v1/clients/cl_app/hmackeys", "-default-", mustJSON(t, k))
		check("POST", st, b, "secret")
		st, _, b = e.raw("PUT", "/v1/hmackeys/hk_short", "-default-", mustJSON(t, k))
		check("PUT", st, b, "secret")
		snap := credentials.Snapshot{Tenants: []credentials.Tenant{{Slug: "acme"}},
			Clients: []credentials.SnapshotClient{{Client: credentials.Client{ID: "cl_app", Tenant: "acme"}, HMACKeys: &[]credentials.HMACKey{k}}}}
		st, _, b = e.raw("PUT", "/v1/snapshot", "-default-", mustJSON(t, snap))
		check("PUT /v1/snapshot", st, b, "clients[0].hmackeys[0].secret")
		st, _, b = e.raw("POST", "/v1/changes", "-default-", mustJSON(t, credentials.ChangeBatch{Upsert: snap}))
		check("POST /v1/changes", st, b, "upsert.clients[0].hmackeys[0].secret")
	}
	// The bounds themselves are accepted.
	for i, n := range []int{credentials.MinHMACSecret, credentials.MaxHMACSecret} {
		if _, _, err := e.client.CreateHMACKey(ctx, "cl_app", credentials.HMACKey{ID: "hk_bound" + itoa(uint64(i)), Secret: randomSecret(n)}); err != nil {
			t.Errorf("a %d-byte secret: %v", n, err)
		}
	}
	if after := e.status(); after.Revision != before.Revision+2 {
		t.Errorf("revision %d → %d: refused writes changed the store", before.Revision, after.Revision)
	}
}

// TestHMACKeysInSnapshotAndChanges: HMAC keys nest under their client in
// snapshots and change batches; exports have no secrets and re-apply
// without a change.
func TestHMACKeysInSnapshotAndChanges(t *testing.T) {
	e := newEnvMasterKey(t)
	ctx := e.ctx()
	s1, s2 := randomSecret(32), randomSecret(40)
	doc := `{"tenants": [{"slug": "acme-corp"}],
	  "clients": [{"id": "cl_datasync", "tenant": "acme-corp",
	    "hmackeys": [{"id": "hk_datasync1", "secret": "` + s1 + `", "scheme": "rfc9421"},
	                 {"id": "hk_legacy", "secret": "` + s2 + `", "scheme": "timestamp-body", "scopes": ["read:projects"]}]}]}`
	st, _, b := e.raw("PUT", "/v1/snapshot", "-default-", []byte(doc))
	if st != 200 {
		t.Fatalf("PUT snapshot: %d %s", st, b)
	}
	var res credentials.ApplyResult
	decodeJSON(t, b, &res)
	snap, err := e.client.GetSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Clients) != 1 || snap.Clients[0].HMACKeys == nil || len(*snap.Clients[0].HMACKeys) != 2 {
		t.Fatalf("export: %+v", snap.Clients)
	}
	for _, k := range *snap.Clients[0].HMACKeys {
		if k.Secret != "" {
			t.Fatalf("the export carries the secret of %s", k.ID)
		}
	}
	if k := (*snap.Clients[0].HMACKeys)[1]; k.ID != "hk_legacy" || k.Scheme != "timestamp-body" || len(k.Scopes) != 1 {
		t.Errorf("exported key %+v", k)
	}
	// Re-applying the export (no secrets) keeps the secrets and the revision.
	again, err := e.client.PutSnapshot(ctx, snap, nil)
	if err != nil || again.Changed || again.Revision != res.Revision {
		t.Fatalf("PUT of the export = %+v, %v (was %+v)", again, err, res)
	}
	// A change batch: a client without hmackeys keeps them.
	cl := credentials.SnapshotClient{Client: credentials.Client{ID: "cl_datasync", Tenant: "acme-corp", Name: "renamed"}}
	if _, err := e.client.Changes(ctx, &credentials.ChangeBatch{Upsert: credentials.Snapshot{Clients: []credentials.SnapshotClient{cl}}}, nil); err != nil {
		t.Fatal(err)
	}
	if ks, err := e.client.ListHMACKeys(ctx, "cl_datasync"); err != nil || len(ks) != 2 {
		t.Fatalf("after an upsert without hmackeys: %+v, %v", ks, err)
	}
	// Delete by ID; then an empty list replaces the rest.
	if _, err := e.client.Changes(ctx, &credentials.ChangeBatch{Delete: credentials.Deletes{HMACKeys: []string{"hk_legacy"}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetHMACKey(ctx, "hk_legacy"); err == nil {
		t.Fatal("hk_legacy survived its delete")
	}
	_, err = e.client.Changes(ctx, &credentials.ChangeBatch{Delete: credentials.Deletes{HMACKeys: []string{"hk_legacy"}}}, nil)
	apiErr(t, err, 404, "not_found")
	st, _, b = e.raw("POST", "/v1/changes", "-default-", []byte(`{"delete":{"hmackeys":["not-an-id"]}}`))
	if eb := errorJSON(t, b); st != 400 || eb.Field != "delete.hmackeys[0]" {
		t.Errorf("malformed delete: %d %+v", st, eb)
	}
	cl.HMACKeys = &[]credentials.HMACKey{}
	if _, err := e.client.Changes(ctx, &credentials.ChangeBatch{Upsert: credentials.Snapshot{Clients: []credentials.SnapshotClient{cl}}}, nil); err != nil {
		t.Fatal(err)
	}
	if ks, err := e.client.ListHMACKeys(ctx, "cl_datasync"); err != nil || len(ks) != 0 {
		t.Fatalf("after hmackeys: []: %+v, %v", ks, err)
	}
	// A key of a deleted client goes with it.
	if _, _, err := e.client.CreateHMACKey(ctx, "cl_datasync", credentials.HMACKey{ID: "hk_gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.DeleteClient(ctx, "cl_datasync"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetHMACKey(ctx, "hk_gone"); err == nil {
		t.Fatal("an HMAC key outlived its client")
	}
}

// TestHMACSecretsNeverLeave puts HMAC secrets through every route that
// takes or answers them, including refused writes, and greps every answer
// but the ones that generated a secret, and the log, for them.
func TestHMACSecretsNeverLeave(t *testing.T) {
	e := newEnvMasterKey(t)
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	var secrets []string
	answers := map[string][]byte{}

	gen, _, err := e.client.CreateHMACKey(ctx, "cl_app", credentials.HMACKey{ID: "hk_gen"})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, gen.Secret)
	imp := randomSecret(32)
	secrets = append(secrets, imp)
	st, _, b := e.raw("POST", "/v1/clients/cl_app/hmackeys", "-default-", mustJSON(t, credentials.HMACKey{ID: "hk_imp", Secret: imp}))
	if st != 201 {
		t.Fatalf("import: %d %s", st, b)
	}
	answers["POST import"] = b
	put := randomSecret(33)
	secrets = append(secrets, put)
	st, _, b = e.raw("PUT", "/v1/hmackeys/hk_put", "-default-", mustJSON(t, credentials.HMACKey{ClientID: "cl_app", Secret: put, Scheme: "timestamp-body"}))
	if st != 200 {
		t.Fatalf("PUT: %d %s", st, b)
	}
	answers["PUT"] = b
	// A second enabled timestamp-body key of the tenant is refused, and
	// its secret is not echoed.
	second := randomSecret(32)
	secrets = append(secrets, second)
	st, _, b = e.raw("POST", "/v1/clients/cl_app/hmackeys", "-default-", mustJSON(t, credentials.HMACKey{ID: "hk_second", Secret: second, Scheme: "timestamp-body"}))
	if st != 400 {
		t.Errorf("a second timestamp-body key of a tenant: %d %s", st, b)
	}
	answers["POST second timestamp-body"] = b
	short := randomSecret(20)
	secrets = append(secrets, short)
	_, _, b = e.raw("PUT", "/v1/hmackeys/hk_put", "-default-", mustJSON(t, credentials.HMACKey{Secret: short}))
	answers["PUT short"] = b
	rot, _, err := e.client.RotateHMACKey(ctx, "hk_gen")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, rot.Secret)
	snapSecret := randomSecret(32)
	secrets = append(secrets, snapSecret)
	if _, err := e.client.Changes(ctx, &credentials.ChangeBatch{Upsert: credentials.Snapshot{Clients: []credentials.SnapshotClient{{
		Client: credentials.Client{ID: "cl_batch", Tenant: "acme"}, HMACKeys: &[]credentials.HMACKey{{ID: "hk_batch", Secret: snapSecret}}}}}}, nil); err != nil {
		t.Fatal(err)
	}
	badBatch := randomSecret(32)
	secrets = append(secrets, badBatch)
	_, _, b = e.raw("POST", "/v1/changes", "-default-", mustJSON(t, credentials.ChangeBatch{Upsert: credentials.Snapshot{Clients: []credentials.SnapshotClient{{
		Client: credentials.Client{ID: "cl_batch", Tenant: "nobody"}, HMACKeys: &[]credentials.HMACKey{{ID: "hk_batch", Secret: badBatch}}}}}}))
	answers["POST changes, unknown tenant"] = b
	for _, p := range []string{"/v1/hmackeys/hk_gen", "/v1/hmackeys", "/v1/clients/cl_app/hmackeys", "/v1/snapshot"} {
		st, _, b := e.raw("GET", p, "-default-", nil)
		if st != 200 {
			t.Fatalf("GET %s: %d %s", p, st, b)
		}
		answers["GET "+p] = b
	}
	for what, b := range answers {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s answers a secret: %s", what, b)
			}
		}
		if bytes.Contains(b, []byte(`"secret":`)) {
			t.Errorf("%s has a secret member: %s", what, b)
		}
	}
	logs := e.logs.String()
	for _, route := range []string{"POST /v1/clients/{id}/hmackeys", "PUT /v1/hmackeys/{id}", "POST /v1/hmackeys/{id}/rotate"} {
		if !strings.Contains(logs, `"route":"`+route+`"`) {
			t.Errorf("no audit line for %s", route)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains secret %q", s)
		}
		raw, _ := base64.StdEncoding.DecodeString(s)
		if len(raw) > 0 && strings.Contains(logs, string(raw)) {
			t.Errorf("log contains the bytes of secret %q", s)
		}
	}
}

// TestHMACKeyNeedsMasterKey: without a master key the store cannot keep
// HMAC secrets; the create is refused (never a plaintext secret on disk)
// and the secret is not echoed.
func TestHMACKeyNeedsMasterKey(t *testing.T) {
	e := newEnv(t, Options{})
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	secret := randomSecret(32)
	st, _, b := e.raw("POST", "/v1/clients/cl_app/hmackeys", "-default-", mustJSON(t, credentials.HMACKey{Secret: secret}))
	if st/100 == 2 || bytes.Contains(b, []byte(secret)) {
		t.Fatalf("create without a master key: %d %s", st, b)
	}
	errorJSON(t, b)
	if st, _, b := e.raw("POST", "/v1/clients/cl_app/hmackeys", "-default-", nil); st/100 == 2 {
		t.Fatalf("generated key without a master key: %d %s", st, b)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
