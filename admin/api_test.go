package admin

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/keygate/keygate/credentials/credentialstest"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/yaml"

	"github.com/keygate/keygate/bolt"
	"github.com/keygate/keygate/credentials"
)

var (
	clientIDRE = regexp.MustCompile(`^cl_[0-9A-Za-z]{16}$`)
	keyIDRE    = regexp.MustCompile(`^ak_[0-9A-Za-z]{16}$`)
)

func TestAuth(t *testing.T) {
	e := newEnv(t, Options{})
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	nk, _, err := e.client.CreateAPIKey(e.ctx(), "cl_app", credentials.APIKey{})
	if err != nil {
		t.Fatal(err)
	}
	before := e.status()
	body := mustJSON(t, credentials.Tenant{Slug: "evil"})

	cases := []struct {
		name, auth string
	}{
		{"missing", ""},
		{"wrong token", "Bearer wrong-token-value-xyz"},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token with suffix", "Bearer " + testToken + "x"},
		{"basic scheme", "Basic " + testToken},
		{"no scheme", testToken},
		{"data-plane API key", "Bearer " + nk.Key},
		{"data-plane API key as ApiKey", "ApiKey " + nk.Key},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range []struct{ method, path string }{
				{"PUT", "/v1/tenants/evil"},
				{"GET", "/v1/snapshot"},
				{"GET", "/v1/backup"},
				{"GET", "/v1/no-such-path"},
			} {
				st, hdr, b := e.raw(p.method, p.path, c.auth, body)
				if st != http.StatusUnauthorized {
					t.Fatalf("%s %s: status %d, want 401: %s", p.method, p.path, st, b)
				}
				if got := hdr.Get("WWW-Authenticate"); got != `Bearer realm="keygate-admin"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if eb := errorJSON(t, b); eb.Code != "unauthenticated" {
					t.Errorf("code = %q", eb.Code)
				}
			}
		})
	}
	// The client with a wrong token gets an *APIError.
	bad := NewClient(e.srv.URL, nk.Key, e.srv.Client())
	_, _, err = bad.PutTenant(e.ctx(), credentials.Tenant{Slug: "evil"})
	apiErr(t, err, 401, "unauthenticated")

	if after := e.status(); after.Revision != before.Revision {
		t.Fatalf("revision moved from %d to %d on unauthenticated requests", before.Revision, after.Revision)
	}
	if _, err := e.client.GetTenant(e.ctx(), "evil"); err == nil {
		t.Fatal("an unauthenticated PUT wrote a tenant")
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "admin authentication failed"); n < len(cases)*4 {
		t.Errorf("%d failed attempts logged, want %d", n, len(cases)*4)
	}
	for _, want := range []string{`"path":"/v1/tenants/evil"`, `"method":"PUT"`, `"remote_addr":"127.0.0.1:`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	for _, secret := range []string{"wrong-token-value-xyz", testToken[:len(testToken)-1], nk.Key, nk.KeySHA256} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a presented credential %q", secret)
		}
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t, Options{})
	st, _, b := e.raw("GET", "/v1/nope", "-default-", nil)
	if st != 404 || errorJSON(t, b).Code != "not_found" {
		t.Fatalf("unknown path: %d %s", st, b)
	}
	st, hdr, b := e.raw("DELETE", "/v1/status", "-default-", nil)
	if st != 405 || errorJSON(t, b).Code != "method_not_allowed" {
		t.Fatalf("wrong method: %d %s", st, b)
	}
	if got := hdr.Get("Allow"); got != "GET" {
		t.Errorf("Allow = %q", got)
	}
	st, hdr, _ = e.raw("PATCH", "/v1/tenants/acme", "-default-", nil)
	if st != 405 || hdr.Get("Allow") != "GET, PUT, DELETE" {
		t.Fatalf("PATCH tenant: %d Allow %q", st, hdr.Get("Allow"))
	}
	st, _, b = e.raw("GET", "/v1/openapi.yaml", "-default-", nil)
	if st != 200 || !bytes.Equal(b, openAPI) {
		t.Fatalf("openapi.yaml: %d", st)
	}
}

func TestTenantCRUD(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	got, rev, err := e.client.PutTenant(ctx, credentials.Tenant{Slug: "acme", DisplayName: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Slug != "acme" || got.DisplayName != "Acme" || rev == 0 {
		t.Fatalf("PutTenant = %+v, %d", got, rev)
	}
	// Identical PUT keeps the revision.
	_, rev2, err := e.client.PutTenant(ctx, credentials.Tenant{Slug: "acme", DisplayName: "Acme"})
	if err != nil || rev2 != rev {
		t.Fatalf("identical PUT: rev %d → %d, %v", rev, rev2, err)
	}
	// The ETag of a read and of a write is the revision.
	st, hdr, b := e.raw("GET", "/v1/tenants/acme", "-default-", nil)
	if st != 200 || hdr.Get("ETag") != fmt.Sprintf(`"%d"`, rev) {
		t.Fatalf("GET: %d ETag %q %s", st, hdr.Get("ETag"), b)
	}
	st, hdr, b = e.raw("PUT", "/v1/tenants/acme", "-default-", []byte(`{"display_name":"Acme Inc"}`))
	if st != 200 || hdr.Get("ETag") != fmt.Sprintf(`"%d"`, rev+1) || !strings.Contains(string(b), fmt.Sprintf(`"revision":%d`, rev+1)) {
		t.Fatalf("PUT: %d ETag %q %s", st, hdr.Get("ETag"), b)
	}
	tn, err := e.client.GetTenant(ctx, "acme")
	if err != nil || tn.DisplayName != "Acme Inc" {
		t.Fatalf("GetTenant = %+v, %v", tn, err)
	}
	e.mustTenant("beta")
	ts, err := e.client.ListTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Slug != "acme" || ts[1].Slug != "beta" {
		t.Fatalf("ListTenants = %+v", ts)
	}
	// Path and body must agree.
	_, _, b = e.raw("PUT", "/v1/tenants/acme", "-default-", []byte(`{"slug":"other"}`))
	if eb := errorJSON(t, b); eb.Code != "invalid" || eb.Field != "slug" {
		t.Fatalf("slug mismatch: %+v", eb)
	}
	_, _, err = e.client.PutTenant(ctx, credentials.Tenant{Slug: "Bad_Slug"})
	apiErr(t, err, 400, "invalid")

	// A tenant with clients cannot be deleted.
	e.mustClient("cl_a", "beta")
	_, err = e.client.DeleteTenant(ctx, "beta")
	apiErr(t, err, 409, "conflict")

	drev, err := e.client.DeleteTenant(ctx, "acme")
	if err != nil || drev <= rev {
		t.Fatalf("DeleteTenant = %d, %v", drev, err)
	}
	_, err = e.client.GetTenant(ctx, "acme")
	apiErr(t, err, 404, "not_found")
	_, err = e.client.DeleteTenant(ctx, "acme")
	apiErr(t, err, 404, "not_found")
}

func TestClientCRUD(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustTenant("beta")

	cl, rev, err := e.client.CreateClient(ctx, credentials.Client{Tenant: "acme", Name: "svc", Scopes: []string{"read:projects"}, RateLimit: "100/minute"})
	if err != nil {
		t.Fatal(err)
	}
	if !clientIDRE.MatchString(cl.ID) || cl.Tenant != "acme" || cl.RateLimit != "100/minute" || rev == 0 {
		t.Fatalf("CreateClient = %+v, %d", cl, rev)
	}
	st, hdr, b := e.raw("POST", "/v1/clients", "-default-", []byte(`{"tenant":"acme"}`))
	if st != http.StatusCreated || !strings.HasPrefix(hdr.Get("Location"), "/v1/clients/cl_") {
		t.Fatalf("POST: %d Location %q %s", st, hdr.Get("Location"), b)
	}
	// POST with an existing ID is a conflict, not an overwrite.
	_, _, err = e.client.CreateClient(ctx, credentials.Client{ID: cl.ID, Tenant: "acme"})
	apiErr(t, err, 409, "conflict")

	put, rev2, err := e.client.PutClient(ctx, credentials.Client{ID: "cl_fixed", Tenant: "beta", Roles: []string{"admin"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
	if err != nil || put.ID != "cl_fixed" || rev2 <= rev {
		t.Fatalf("PutClient = %+v, %d, %v", put, rev2, err)
	}
	_, rev3, err := e.client.PutClient(ctx, credentials.Client{ID: "cl_fixed", Tenant: "beta", Roles: []string{"admin"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
	if err != nil || rev3 != rev2 {
		t.Fatalf("identical PutClient: rev %d → %d, %v", rev2, rev3, err)
	}
	got, err := e.client.GetClient(ctx, "cl_fixed")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(put, got); diff != "" {
		t.Errorf("GetClient differs from the PUT answer (-put +get):\n%s", diff)
	}
	all, err := e.client.ListClients(ctx, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("ListClients(all) = %d, %v", len(all), err)
	}
	beta, err := e.client.ListClients(ctx, "beta")
	if err != nil || len(beta) != 1 || beta[0].ID != "cl_fixed" {
		t.Fatalf("ListClients(beta) = %+v, %v", beta, err)
	}
	// Validation errors name the field.
	_, _, err = e.client.PutClient(ctx, credentials.Client{ID: "cl_x", Tenant: "acme", AllowedCIDRs: []string{"10.0.0.0/8", "nope"}})
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "allowed_cidrs[1]" {
		t.Errorf("field = %q", ae.Field)
	}
	_, _, b = e.raw("PUT", "/v1/clients/cl_x", "-default-", []byte(`{"id":"cl_y","tenant":"acme"}`))
	if eb := errorJSON(t, b); eb.Field != "id" {
		t.Errorf("id mismatch: %+v", eb)
	}
	if _, err := e.client.DeleteClient(ctx, "cl_fixed"); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetClient(ctx, "cl_fixed")
	apiErr(t, err, 404, "not_found")
	_, err = e.client.DeleteClient(ctx, "cl_fixed")
	apiErr(t, err, 404, "not_found")
}

func TestGeneratedAPIKeyShownOnce(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	nk, rev, err := e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{Name: "ci", Scopes: []string{"read:projects"}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if !keyIDRE.MatchString(nk.ID) || nk.ClientID != "cl_app" || rev == 0 {
		t.Fatalf("CreateAPIKey = %+v", nk)
	}
	if err := credentials.CheckKeyFormat(nk.Key); err != nil || !strings.HasPrefix(nk.Key, "kg_") {
		t.Fatalf("generated key %q: %v", nk.Key, err)
	}
	if nk.KeySHA256 != sumHex(nk.Key) || nk.APIKey.Key != "" {
		t.Fatalf("digest %q does not match the key", nk.KeySHA256)
	}
	if !e.inIndex(nk.Key) {
		t.Fatal("the new key is not served")
	}
	// Never again: GET, lists, snapshot.
	for _, p := range []string{"/v1/apikeys/" + nk.ID, "/v1/apikeys", "/v1/clients/cl_app/apikeys", "/v1/snapshot"} {
		st, _, b := e.raw("GET", p, "-default-", nil)
		if st != 200 {
			t.Fatalf("GET %s: %d %s", p, st, b)
		}
		if bytes.Contains(b, []byte(nk.Key)) || bytes.Contains(b, []byte(`"key"`)) {
			t.Errorf("GET %s shows the key: %s", p, b)
		}
		if !bytes.Contains(b, []byte(nk.KeySHA256)) {
			t.Errorf("GET %s lacks key_sha256: %s", p, b)
		}
	}
	got, err := e.client.GetAPIKey(ctx, nk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != "" || got.Name != "ci" || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("GetAPIKey = %+v", got)
	}
	ks, err := e.client.ListAPIKeys(ctx, "cl_app")
	if err != nil || len(ks) != 1 || ks[0].ID != nk.ID {
		t.Fatalf("ListAPIKeys = %+v, %v", ks, err)
	}
	_, err = e.client.ListAPIKeys(ctx, "cl_missing")
	apiErr(t, err, 404, "not_found")
	_, _, err = e.client.CreateAPIKey(ctx, "cl_missing", credentials.APIKey{})
	apiErr(t, err, 404, "not_found")
	_, _, err = e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{ID: nk.ID})
	apiErr(t, err, 409, "conflict")

	// PUT without key material keeps the digest: disable the key.
	got.Disabled = true
	dis, _, err := e.client.PutAPIKey(ctx, *got)
	if err != nil || !dis.Disabled || dis.KeySHA256 != nk.KeySHA256 {
		t.Fatalf("PutAPIKey(disable) = %+v, %v", dis, err)
	}
	if _, err := e.client.DeleteAPIKey(ctx, nk.ID); err != nil {
		t.Fatal(err)
	}
	if e.inIndex(nk.Key) {
		t.Fatal("a deleted key is still served")
	}
	_, err = e.client.DeleteAPIKey(ctx, nk.ID)
	apiErr(t, err, 404, "not_found")
}

func TestImportAPIKeys(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")

	// A Django-style key (secrets.token_urlsafe(32)) imported as plaintext.
	plain := djangoKey()
	nk, _, err := e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{ID: "ak_django1", Key: plain})
	if err != nil {
		t.Fatal(err)
	}
	if nk.Key != "" || nk.ID != "ak_django1" || nk.KeySHA256 != sumHex(plain) {
		t.Fatalf("import by plaintext = %+v", nk)
	}
	// Another imported as hashlib.sha256(key).hexdigest() (upper case accepted).
	hashed := djangoKey()
	nk2, _, err := e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{KeySHA256: strings.ToUpper(sumHex(hashed))})
	if err != nil {
		t.Fatal(err)
	}
	if nk2.Key != "" || !keyIDRE.MatchString(nk2.ID) || nk2.KeySHA256 != sumHex(hashed) {
		t.Fatalf("import by digest = %+v", nk2)
	}
	if !e.inIndex(plain) || !e.inIndex(hashed) {
		t.Fatal("imported keys are not served")
	}
	// The same key again is refused.
	_, _, err = e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{Key: plain})
	if err == nil {
		t.Fatal("a duplicate key was accepted")
	}
	if strings.Contains(err.Error(), plain) {
		t.Fatalf("error echoes the key: %v", err)
	}
	// A malformed plaintext key is refused without quoting it.
	for _, bad := range []string{"short-key", "a-key-with,comma-" + plain, "quote\"" + plain} {
		_, _, err = e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{Key: bad})
		if ae := apiErr(t, err, 400, "invalid"); ae.Field != "key" || strings.Contains(ae.Message, bad) {
			t.Errorf("bad key: %v", ae)
		}
		_, _, b := e.raw("PUT", "/v1/apikeys/ak_bad", "-default-", mustJSON(t, credentials.APIKey{ClientID: "cl_app", Key: bad}))
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("PUT echoes the key: %s", b)
		}
	}
	// PUT with a plaintext key imports it under the caller's ID.
	third := djangoKey()
	pk, _, err := e.client.PutAPIKey(ctx, credentials.APIKey{ID: "ak_put", ClientID: "cl_app", Key: third})
	if err != nil || pk.Key != "" || pk.KeySHA256 != sumHex(third) {
		t.Fatalf("PutAPIKey = %+v, %v", pk, err)
	}
	_, _, err = e.client.PutAPIKey(ctx, credentials.APIKey{ID: "ak_new"})
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "client_id" {
		t.Errorf("field = %q", ae.Field)
	}
	e.mustClient("cl_other", "acme")
	_, _, err = e.client.PutAPIKey(ctx, credentials.APIKey{ID: "ak_put", ClientID: "cl_other"})
	apiErr(t, err, 400, "invalid")
}

func testSnapshot() *credentials.Snapshot {
	keys := []credentials.APIKey{{ID: "ak_one", KeySHA256: sumHex("key-number-one-0000")}, {ID: "ak_two", Key: "key-number-two-0000"}}
	return &credentials.Snapshot{
		Tenants: []credentials.Tenant{{Slug: "acme", DisplayName: "Acme"}, {Slug: "beta"}},
		Clients: []credentials.SnapshotClient{
			{Client: credentials.Client{ID: "cl_one", Tenant: "acme", Scopes: []string{"read:*"}}, APIKeys: &keys},
			{Client: credentials.Client{ID: "cl_two", Tenant: "beta"}},
		},
	}
}

func TestPutSnapshotIdempotent(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("gone") // not in the snapshot: deleted
	res, err := e.client.PutSnapshot(ctx, testSnapshot(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Revision == 0 {
		t.Fatalf("first PUT = %+v", res)
	}
	res2, err := e.client.PutSnapshot(ctx, testSnapshot(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Changed || res2.Revision != res.Revision {
		t.Fatalf("identical PUT = %+v, first %+v", res2, res)
	}
	if _, err := e.client.GetTenant(ctx, "gone"); err == nil {
		t.Fatal("a tenant missing from the snapshot survived")
	}
	if !e.inIndex("key-number-two-0000") {
		t.Fatal("snapshot key not served")
	}
	// The exported snapshot applies as is and changes nothing.
	snap, err := e.client.GetSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Tenants) != 2 || len(snap.Clients) != 2 {
		t.Fatalf("GetSnapshot = %+v", snap)
	}
	res3, err := e.client.PutSnapshot(ctx, snap, u64(res.Revision))
	if err != nil || res3.Changed || res3.Revision != res.Revision {
		t.Fatalf("PUT of the export = %+v, %v", res3, err)
	}
	st, hdr, _ := e.raw("PUT", "/v1/snapshot", "-default-", mustJSON(t, testSnapshot()))
	if st != 200 || hdr.Get("ETag") != fmt.Sprintf(`"%d"`, res.Revision) {
		t.Fatalf("raw PUT: %d ETag %q", st, hdr.Get("ETag"))
	}
}

func TestIfMatch(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	res, err := e.client.PutSnapshot(ctx, testSnapshot(), nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := testSnapshot()
	changed.Tenants[1].DisplayName = "Beta"
	_, err = e.client.PutSnapshot(ctx, changed, u64(res.Revision-1))
	apiErr(t, err, 412, "precondition_failed")
	_, err = e.client.Changes(ctx, &credentials.ChangeBatch{Delete: credentials.Deletes{Clients: []string{"cl_two"}}}, u64(res.Revision+5))
	apiErr(t, err, 412, "precondition_failed")
	for _, h := range []string{"abc", `"1`, "-1", "W/\"1\"", "+1"} {
		st, _, b := e.raw("PUT", "/v1/snapshot", "-default-", mustJSON(t, changed), "If-Match", h)
		if eb := errorJSON(t, b); st != 400 || eb.Field != "If-Match" {
			t.Errorf("If-Match %q: %d %+v", h, st, eb)
		}
	}
	if st := e.status(); st.Revision != res.Revision {
		t.Fatalf("revision %d after refused writes, want %d", st.Revision, res.Revision)
	}
	if tn, _ := e.client.GetTenant(ctx, "beta"); tn.DisplayName != "" {
		t.Fatal("a refused write changed the tenant")
	}
	// Both spellings of the right revision work.
	st, hdr, b := e.raw("PUT", "/v1/snapshot", "-default-", mustJSON(t, changed), "If-Match", fmt.Sprint(res.Revision))
	if st != 200 {
		t.Fatalf("If-Match N: %d %s", st, b)
	}
	st, _, b = e.raw("PUT", "/v1/tenants/beta", "-default-", []byte(`{"display_name":"B"}`), "If-Match", hdr.Get("ETag"))
	if st != 200 {
		t.Fatalf(`If-Match "N": %d %s`, st, b)
	}
}

func TestUnknownField(t *testing.T) {
	e := newEnv(t, Options{})
	for _, c := range []struct{ method, path, body, field string }{
		{"PUT", "/v1/tenants/acme", `{"slug":"acme","display_nam":"x"}`, "display_nam"},
		{"PUT", "/v1/snapshot", `{"tenants":[{"slug":"acme"}],"hmackeys":[]}`, "hmackeys"},
		{"PUT", "/v1/snapshot", `{"tenants":[{"slug":"acme"}],"clients":[{"id":"cl_a","tenant":"acme","apikeys":[{"id":"ak_a","key_sha":"x"}]}]}`, "key_sha"},
		{"POST", "/v1/changes", `{"upsert":{},"delete":{"hmackey":["hk_a"]}}`, "hmackey"},
		{"POST", "/v1/clients/cl_a/hmackeys", `{"secrets":"c2VjcmV0"}`, "secrets"},
		{"PUT", "/v1/hmackeys/hk_a", `{"client_id":"cl_a","key":"x"}`, "key"},
		{"POST", "/v1/clients", `{"tenant":"acme","scope":["a"]}`, "scope"},
		{"POST", "/v1/apikeys/ak_x/rotate", `{"grace":"1h","when":"now"}`, "when"},
	} {
		st, _, b := e.raw(c.method, c.path, "-default-", []byte(c.body))
		eb := errorJSON(t, b)
		if st != 400 || eb.Code != "invalid" || !strings.HasSuffix(eb.Field, c.field) {
			t.Errorf("%s %s %s: %d %+v, want field %s", c.method, c.path, c.body, st, eb, c.field)
		}
	}
	for _, body := range []string{``, `{`, `[]`, `{"slug":"a"} {"slug":"b"}`, `{"slug":5}`} {
		st, _, b := e.raw("PUT", "/v1/tenants/a", "-default-", []byte(body))
		if st != 400 || errorJSON(t, b).Code != "invalid" {
			t.Errorf("body %q: %d %s", body, st, b)
		}
	}
	if st := e.status(); st.Revision != 0 {
		t.Fatalf("revision %d after refused writes", st.Revision)
	}
}

// bigSnapshot is one tenant and client with n keys.
func bigSnapshot(n int) *credentials.Snapshot {
	keys := make([]credentials.APIKey, n)
	for i := range keys {
		keys[i] = credentials.APIKey{ID: fmt.Sprintf("ak_%06d", i), KeySHA256: sumHex(fmt.Sprintf("bulk-key-%06d-xxxxxxxx", i))}
	}
	return &credentials.Snapshot{
		Tenants: []credentials.Tenant{{Slug: "bulk"}},
		Clients: []credentials.SnapshotClient{{Client: credentials.Client{ID: "cl_bulk", Tenant: "bulk"}, APIKeys: &keys}},
	}
}

func TestSnapshotOneInvalidOf100000(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	// The previous revision: the bulk tenant and client with a few keys.
	// (Not 100,000: committing that many keys is bolt's benchmark, and too
	// slow under -race for this package's test budget.)
	res, err := e.client.PutSnapshot(ctx, bigSnapshot(10), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := e.status()

	// The next one has 100,000 keys, renames the tenant and breaks the last key.
	snap := bigSnapshot(100_000)
	snap.Tenants[0].DisplayName = "changed"
	(*snap.Clients[0].APIKeys)[99_999].KeySHA256 = "not-a-digest"
	body := mustJSON(t, snap)
	if len(body) > DefaultMaxBody {
		t.Fatalf("a 100,000-key snapshot is %d bytes, over the default limit", len(body))
	}
	_, err = e.client.PutSnapshotJSON(ctx, body, nil)
	ae := apiErr(t, err, 400, "invalid")
	if ae.Field != "clients[0].apikeys[99999].key_sha256" {
		t.Fatalf("field = %q", ae.Field)
	}
	if after := e.status(); !cmp.Equal(before, after) {
		t.Fatalf("status changed: %+v → %+v", before, after)
	}
	if e.store.Index().Revision != res.Revision || !e.inIndex("bulk-key-000009-xxxxxxxx") || e.inIndex("bulk-key-000010-xxxxxxxx") {
		t.Fatal("the previous revision is no longer served")
	}
	if tn, err := e.client.GetTenant(ctx, "bulk"); err != nil || tn.DisplayName != "" {
		t.Fatalf("part of the refused snapshot was written: %+v, %v", tn, err)
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, Options{MaxBody: 1 << 20})
	ctx := e.ctx()
	if _, err := e.client.PutSnapshot(ctx, testSnapshot(), nil); err != nil {
		t.Fatal(err)
	}
	before := e.status()
	big := mustJSON(t, bigSnapshot(50_000)) // about 5 MiB
	if len(big) < 4<<20 {
		t.Fatalf("test body is only %d bytes", len(big))
	}
	_, err := e.client.PutSnapshotJSON(ctx, big, nil)
	apiErr(t, err, 413, "too_large")

	// Without a Content-Length the limit holds while reading.
	req, _ := http.NewRequestWithContext(ctx, "PUT", e.srv.URL+"/v1/snapshot", struct{ io.Reader }{bytes.NewReader(big)})
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 || errorJSON(t, b).Code != "too_large" {
		t.Fatalf("chunked: %d %s", resp.StatusCode, b)
	}
	if after := e.status(); !cmp.Equal(before, after) {
		t.Fatalf("status changed: %+v → %+v", before, after)
	}
	// Under the limit still works.
	if _, err := e.client.PutSnapshot(ctx, bigSnapshot(1000), nil); err != nil {
		t.Fatal(err)
	}
}

func TestChangesBatch(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	res, err := e.client.PutSnapshot(ctx, testSnapshot(), nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := []credentials.APIKey{{ID: "ak_three", Key: "key-number-three-00"}}
	batch := &credentials.ChangeBatch{
		Upsert: credentials.Snapshot{
			Tenants: []credentials.Tenant{{Slug: "gamma"}},
			Clients: []credentials.SnapshotClient{{Client: credentials.Client{ID: "cl_three", Tenant: "gamma"}, APIKeys: &keys}},
		},
		Delete: credentials.Deletes{Clients: []string{"cl_two"}, APIKeys: []string{"ak_one"}},
	}
	res2, err := e.client.Changes(ctx, batch, u64(res.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Changed || res2.Revision != res.Revision+1 {
		t.Fatalf("Changes = %+v", res2)
	}
	if _, err := e.client.GetClient(ctx, "cl_two"); err == nil {
		t.Fatal("cl_two survived")
	}
	if _, err := e.client.GetAPIKey(ctx, "ak_one"); err == nil {
		t.Fatal("ak_one survived")
	}
	if !e.inIndex("key-number-three-00") || !e.inIndex("key-number-two-0000") {
		t.Fatal("keys not served after the batch")
	}
	// Same upsert again changes nothing.
	again := &credentials.ChangeBatch{Upsert: batch.Upsert}
	res3, err := e.client.Changes(ctx, again, nil)
	if err != nil || res3.Changed || res3.Revision != res2.Revision {
		t.Fatalf("repeated upsert = %+v, %v", res3, err)
	}
	// Deleting something missing is a 404 and nothing else happens.
	_, err = e.client.Changes(ctx, &credentials.ChangeBatch{
		Upsert: credentials.Snapshot{Tenants: []credentials.Tenant{{Slug: "delta"}}},
		Delete: credentials.Deletes{APIKeys: []string{"ak_missing"}},
	}, nil)
	apiErr(t, err, 404, "not_found")
	if _, err := e.client.GetTenant(ctx, "delta"); err == nil {
		t.Fatal("a failed batch was partly applied")
	}
	_, err = e.client.Changes(ctx, &credentials.ChangeBatch{Delete: credentials.Deletes{Clients: []string{"bad id"}}}, nil)
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "delete.clients[0]" {
		t.Errorf("field = %q", ae.Field)
	}
}

func TestRotateAPIKey(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	old, _, err := e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{Name: "deploy", Scopes: []string{"read:x"}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	nk, rev, err := e.client.RotateAPIKey(ctx, old.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if nk.ID == old.ID || nk.Key == "" || nk.Key == old.Key || nk.ClientID != "cl_app" || nk.Name != "deploy" ||
		!cmp.Equal(nk.Scopes, old.Scopes) || nk.ExpiresAt == nil || !nk.ExpiresAt.Equal(exp) || nk.KeySHA256 != sumHex(nk.Key) {
		t.Fatalf("rotated key = %+v", nk)
	}
	was, err := e.client.GetAPIKey(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if was.Disabled || was.ExpiresAt == nil || was.ExpiresAt.Before(start.Add(time.Hour-2*time.Second)) || was.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("old key after rotation with grace = %+v", was)
	}
	if !e.inIndex(old.Key) || !e.inIndex(nk.Key) {
		t.Fatal("both keys should be served during the grace period")
	}
	if st := e.status(); st.Revision != rev {
		t.Fatalf("revision %d, want %d (one Apply)", st.Revision, rev)
	}
	// Grace 0: disabled at once.
	nk2, _, err := e.client.RotateAPIKey(ctx, nk.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	was2, err := e.client.GetAPIKey(ctx, nk.ID)
	if err != nil || !was2.Disabled {
		t.Fatalf("old key after rotation without grace = %+v, %v", was2, err)
	}
	if nk2.ExpiresAt == nil || !nk2.ExpiresAt.Equal(exp) {
		t.Fatalf("second rotation lost the expiry: %+v", nk2)
	}
	// Rotate with no body at all disables too; bad grace and missing keys are refused.
	st, _, b := e.raw("POST", "/v1/apikeys/"+nk2.ID+"/rotate", "-default-", nil)
	if st != 201 || !bytes.Contains(b, []byte(`"key":"kg_`)) {
		t.Fatalf("rotate without body: %d %s", st, b)
	}
	_, _, err = e.client.RotateAPIKey(ctx, nk2.ID, -time.Second)
	if ae := apiErr(t, err, 400, "invalid"); ae.Field != "grace" {
		t.Errorf("field = %q", ae.Field)
	}
	_, _, err = e.client.RotateAPIKey(ctx, "ak_missing", time.Hour)
	apiErr(t, err, 404, "not_found")
}

func TestBackup(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	if _, err := e.client.PutSnapshot(ctx, testSnapshot(), nil); err != nil {
		t.Fatal(err)
	}
	e.mustTenant("extra")
	want := e.status()

	st, hdr, _ := e.raw("GET", "/v1/backup", "-default-", nil)
	if st != 200 || hdr.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("backup: %d %q", st, hdr.Get("Content-Type"))
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.client.Backup(ctx, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	b, err := bolt.Open(path, bolt.Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApproxTime(time.Second)); diff != "" {
		t.Fatalf("backup status differs (-live +backup):\n%s", diff)
	}
	bs, err := b.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := e.client.GetSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ls, bs); diff != "" {
		t.Fatalf("backup content differs (-live +backup):\n%s", diff)
	}
}

// specExample is the snapshot of SPEC §4 without the parts not built yet
// (hmackeys, issuers, revocations).
const specExample = `
tenants:
  - slug: acme-corp
    display_name: Acme Corp
clients:
  - id: cl_datasync
    tenant: acme-corp
    name: Data Sync Service
    roles: [read, write]
    scopes: ["read:projects", "write:projects"]
    rate_limit: 10000/hour
    allowed_cidrs: ["10.0.1.5/32"]
    apikeys:
      - id: ak_datasync1
        key_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
`

func TestSpecExampleSnapshot(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	body, err := yaml.YAMLToJSON([]byte(specExample))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.client.PutSnapshotJSON(ctx, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != 1 || !res.Changed {
		t.Fatalf("apply = %+v", res)
	}
	cl, err := e.client.GetClient(ctx, "cl_datasync")
	if err != nil {
		t.Fatal(err)
	}
	want := credentials.Client{ID: "cl_datasync", Tenant: "acme-corp", Name: "Data Sync Service", Roles: []string{"read", "write"},
		Scopes: []string{"read:projects", "write:projects"}, RateLimit: "10000/hour", AllowedCIDRs: []string{"10.0.1.5/32"}}
	if diff := cmp.Diff(want, *cl, cmpopts.IgnoreFields(credentials.Client{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Fatalf("client (-want +got):\n%s", diff)
	}
	// 9f86d0… is sha256("test").
	k, err := e.client.GetAPIKey(ctx, "ak_datasync1")
	if err != nil || k.ClientID != "cl_datasync" || k.KeySHA256 != sumHex("test") {
		t.Fatalf("key = %+v, %v", k, err)
	}
	// Applying it again keeps the revision.
	res2, err := e.client.PutSnapshotJSON(ctx, body, nil)
	if err != nil || res2.Revision != 1 {
		t.Fatalf("reapply = %+v, %v", res2, err)
	}
}

// TestNoSecretsInLogs runs the secret-carrying operations and greps the
// captured log for every secret and digest they used.
func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := e.ctx()
	e.mustTenant("acme")
	e.mustClient("cl_app", "acme")
	secrets := []string{testToken}
	gen, _, err := e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, gen.Key, gen.KeySHA256)
	plain := djangoKey()
	imp, _, err := e.client.CreateAPIKey(ctx, "cl_app", credentials.APIKey{Key: plain})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, plain, imp.KeySHA256)
	rot, _, err := e.client.RotateAPIKey(ctx, gen.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, rot.Key, rot.KeySHA256)
	snap := testSnapshot()
	secrets = append(secrets, "key-number-two-0000", sumHex("key-number-two-0000"), sumHex("key-number-one-0000"))
	if _, err := e.client.PutSnapshot(ctx, snap, nil); err != nil {
		t.Fatal(err)
	}
	// Failures: a bad key, a duplicate key, a wrong token that is a key.
	bad := "bad,key," + djangoKey()
	secrets = append(secrets, bad)
	e.client.CreateAPIKey(ctx, "cl_one", credentials.APIKey{Key: bad})
	e.client.CreateAPIKey(ctx, "cl_one", credentials.APIKey{Key: "key-number-two-0000"})
	NewClient(e.srv.URL, rot.Key, e.srv.Client()).Status(ctx)
	e.raw("GET", "/v1/status", "Bearer "+plain, nil)

	logs := e.logs.String()
	if !strings.Contains(logs, `"admin change"`) || !strings.Contains(logs, `"actor":"admin@127.0.0.1:`) {
		t.Fatalf("changes are not logged with their actor:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains secret %q", s)
		}
	}
}

// TestStoreUnavailable writes to a closed store: 503 with the JSON error
// shape, and nothing about the file in the message.
func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t, Options{})
	e.mustTenant("acme")
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.client.PutTenant(e.ctx(), credentials.Tenant{Slug: "beta"})
	if ae := apiErr(t, err, 503, "unavailable"); strings.Contains(ae.Message, e.dir) {
		t.Fatalf("message reveals the store path: %v", ae)
	}
}

// TestInternalErrorsAreGeneric: an error that is not a credentials error
// answers 500 "internal error"; its cause is only logged.
func TestInternalErrorsAreGeneric(t *testing.T) {
	logs := &credentialstest.LogBuffer{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), logs, zapcore.DebugLevel))
	h := NewHandler(nil, Options{Token: testToken, Logger: log})
	for _, err := range []error{
		errors.New("open /var/lib/keygate/keygate.db: disk on fire"),
		credentials.Internal(errors.New("open /var/lib/keygate/keygate.db: disk on fire")),
		credentials.Errorf("some_new_code", "open /var/lib/keygate/keygate.db: disk on fire"),
	} {
		rec := httptest.NewRecorder()
		h.writeError(rec, httptest.NewRequest("GET", "/v1/status", nil), err)
		eb := errorJSON(t, rec.Body.Bytes())
		if rec.Code != 500 || eb.Code != "internal" || eb.Message != "internal error" || eb.Field != "" {
			t.Errorf("%v: %d %+v", err, rec.Code, eb)
		}
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Error("the cause of an internal error is not logged")
	}
}

// TestStatusTable pins the one code → HTTP status table.
func TestStatusTable(t *testing.T) {
	want := map[string]int{
		"invalid": 400, "unauthenticated": 401, "forbidden": 403, "not_found": 404,
		"method_not_allowed": 405, "conflict": 409, "precondition_failed": 412,
		"too_large": 413, "rate_limited": 429, "internal": 500, "unavailable": 503,
	}
	if diff := cmp.Diff(want, statusOf); diff != "" {
		t.Fatal(diff)
	}
}
