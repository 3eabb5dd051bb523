package proxies

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/extauthz"
)

// identityHeaders are the headers only keygate may set on the request to
// the app.
var identityHeaders = []string{"X-Tenant-Id", "X-Auth-Subject", "X-Auth-Client-Id", "X-Auth-Key-Id", "X-Auth-Method", "X-Auth-Scopes"}

// forged are identity headers and route settings a client sends in the
// hope that the proxy passes them on.
var forged = []string{
	"X-Tenant-ID: victim", "X-Auth-Subject: cl_admin", "X-Auth-Client-ID: cl_admin", "X-Auth-Key-ID: ak_admin",
	"X-Auth-Method: jwt", "X-Auth-Scopes: admin:*",
	"X-Keygate-Anonymous: true", "X-Keygate-Scopes: ", "X-Keygate-Tenant: acme",
}

// proxyCase is one request through a proxy and what must come of it.
type proxyCase struct {
	name   string
	path   string   // request target; {key} placeholders name keys of world.keys, {jwt} the token
	hdr    []string // "Name: value" (placeholders as in path)
	repeat int      // send this many times; the last answer counts
	want   string   // "ok" or the deny code
	// check looks at what the app got (ok only).
	check func(t *testing.T, w *world, got seen)
}

func proxyCases() []proxyCase {
	noCredential := func(t *testing.T, w *world, got seen) {
		t.Helper()
		for _, name := range []string{"X-Api-Key", "Authorization"} {
			if v := got.header.Values(name); len(v) > 0 {
				t.Errorf("the app got %s: %q", name, v)
			}
		}
	}
	identity := func(want map[string]string) func(t *testing.T, w *world, got seen) {
		return func(t *testing.T, w *world, got seen) {
			t.Helper()
			noCredential(t, w, got)
			for _, name := range identityHeaders {
				v := got.header.Values(name)
				switch {
				case want[name] == "" && len(v) > 0:
					t.Errorf("the app got %s: %q; want none", name, v)
				case want[name] != "" && (len(v) != 1 || v[0] != want[name]):
					t.Errorf("the app got %s: %q; want %q", name, v, want[name])
				}
			}
		}
	}
	acme := map[string]string{"X-Tenant-Id": "acme", "X-Auth-Subject": "cl_acme", "X-Auth-Client-Id": "cl_acme",
		"X-Auth-Key-Id": "ak_acme", "X-Auth-Method": "apikey", "X-Auth-Scopes": "read:*"}
	return []proxyCase{
		{name: "allow_x_api_key", path: "/v1/projects?page=2", hdr: append([]string{"X-API-Key: {acme}"}, forged...), want: "ok",
			check: func(t *testing.T, w *world, got seen) {
				identity(acme)(t, w, got)
				if got.target != "/v1/projects?page=2" {
					t.Errorf("the app got %s; want /v1/projects?page=2", got.target)
				}
			}},
		{name: "allow_authorization_apikey", path: "/v1/projects", hdr: append([]string{"Authorization: ApiKey {acme}"}, forged...), want: "ok", check: identity(acme)},
		{name: "allow_jwt", path: "/v1/projects", hdr: append([]string{"Authorization: Bearer {jwt}"}, forged...), want: "ok",
			check: identity(map[string]string{"X-Tenant-Id": "acme", "X-Auth-Subject": "user-1", "X-Auth-Method": "jwt", "X-Auth-Scopes": "read:projects"})},
		{name: "allow_jwt_kept", path: "/profile/me", hdr: []string{"Authorization: Bearer {jwt}", "X-Tenant-ID: victim"}, want: "ok",
			check: func(t *testing.T, w *world, got seen) {
				if v := got.header.Get("Authorization"); v != "Bearer "+w.jwt {
					t.Errorf("keep_jwt route: the app got Authorization %q", v)
				}
				if v := got.header.Values("X-Tenant-Id"); len(v) != 1 || v[0] != "acme" {
					t.Errorf("the app got X-Tenant-Id %q; want acme", v)
				}
			}},
		{name: "allow_tenant_pinned", path: "/globex/reports", hdr: []string{"X-API-Key: {globex}", "X-Tenant-ID: acme"}, want: "ok",
			check: identity(map[string]string{"X-Tenant-Id": "globex", "X-Auth-Subject": "cl_globex", "X-Auth-Client-Id": "cl_globex",
				"X-Auth-Key-Id": "ak_globex", "X-Auth-Method": "apikey", "X-Auth-Scopes": "read:projects"})},
		{name: "allow_query_key_stripped", path: "/export/data.csv?from=2024&api_key={acme}&to=2025", want: "ok",
			check: func(t *testing.T, w *world, got seen) {
				identity(acme)(t, w, got)
				u, err := url.ParseRequestURI(got.target)
				if err != nil {
					t.Fatal(err)
				}
				q := u.Query()
				if strings.Contains(got.target, w.keys["acme"]) || q.Has("api_key") || q.Get("from") != "2024" || q.Get("to") != "2025" || u.Path != "/export/data.csv" {
					t.Errorf("the app got %s; want /export/data.csv with from and to, without api_key", got.target)
				}
			}},
		{name: "allow_anonymous", path: "/public/docs", hdr: forged, want: "ok", check: identity(nil)},
		{name: "allow_anonymous_with_key", path: "/public/docs", hdr: []string{"X-API-Key: {acme}", "X-Tenant-ID: victim"}, want: "ok", check: identity(acme)},
		// The client's address comes from the proxy (X-Real-IP), never from the client.
		{name: "allow_cidr_loopback", path: "/v1/projects", hdr: []string{"X-API-Key: {local}", "X-Real-IP: 10.0.1.5", "X-Forwarded-For: 10.0.1.5"}, want: "ok"},
		{name: "deny_cidr_spoofed", path: "/v1/projects", hdr: []string{"X-API-Key: {remote}", "X-Real-IP: 10.0.1.5", "X-Forwarded-For: 10.0.1.5"}, want: "ip_not_allowed"},
		{name: "deny_no_credential", path: "/v1/projects", want: "not_authenticated"},
		{name: "deny_forged_settings", path: "/v1/projects", hdr: forged, want: "not_authenticated"},
		// A client naming another original request (the family its proxy does not set).
		{name: "deny_forged_original", path: "/v1/projects", hdr: []string{"X-Original-URI: /public/docs", "X-Original-Method: GET",
			"X-Forwarded-Uri: /public/docs", "X-Forwarded-Method: GET"}, want: "not_authenticated"},
		{name: "deny_unknown_key", path: "/v1/projects", hdr: []string{"X-API-Key: kg_0000000000000000000000000000000000000000000000"}, want: "invalid_api_key"},
		{name: "deny_unknown_key_anonymous", path: "/public/docs", hdr: []string{"X-API-Key: {unknown}"}, want: "invalid_api_key"},
		{name: "deny_ambiguous", path: "/v1/projects", hdr: []string{"X-API-Key: {acme}", "Authorization: Bearer {jwt}"}, want: "ambiguous_credentials"},
		{name: "deny_query_key_not_opted_in", path: "/v1/projects?api_key={acme}", want: "not_authenticated"},
		{name: "deny_query_key_encoded_name", path: "/export/data.csv?api%5Fkey={acme}", want: "invalid_api_key"},
		{name: "deny_insufficient_scope", path: "/v1/projects", hdr: []string{"X-API-Key: {noscope}"}, want: "insufficient_scope"},
		{name: "deny_role_missing", path: "/admin/users", hdr: []string{"X-API-Key: {acme}"}, want: "insufficient_scope"},
		{name: "deny_other_tenant", path: "/globex/reports", hdr: []string{"X-API-Key: {acme}"}, want: "forbidden"},
		{name: "deny_jwt_not_accepted", path: "/profile/me", hdr: []string{"X-API-Key: {acme}"}, want: "not_authenticated"},
		{name: "deny_rate_limited", path: "/v1/projects", hdr: []string{"X-API-Key: {limited}"}, repeat: 2, want: "rate_limited"},
	}
}

// runProxyCases sends every case through the proxy at addr and checks
// the answer and what the app got.
func runProxyCases(t *testing.T, p *proxy, a *app, w *world, kg *keygate) {
	pairs := []string{"{jwt}", w.jwt, "{unknown}", credentials.GenerateAPIKey()}
	for name, k := range w.keys {
		pairs = append(pairs, "{"+name+"}", k)
	}
	repl := strings.NewReplacer(pairs...)
	for _, tc := range proxyCases() {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-H", "X-Test-Case: " + tc.name}
			for _, h := range tc.hdr {
				args = append(args, "-H", repl.Replace(h))
			}
			var got answer
			for range max(tc.repeat, 1) {
				got = curl(t, "http://"+p.addr+repl.Replace(tc.path), args...)
			}
			reached := a.requests(tc.name)
			if tc.want == "ok" {
				if got.status != 200 || got.body != "app" {
					t.Fatalf("%d %s; want 200 from the app", got.status, got.body)
				}
				if len(reached) != max(tc.repeat, 1) {
					t.Fatalf("the app got %d requests; want %d", len(reached), max(tc.repeat, 1))
				}
				if tc.check != nil {
					tc.check(t, w, reached[len(reached)-1])
				}
				return
			}
			code := credentials.DenyCode(tc.want)
			status, _, _, ok := extauthz.DenyStatus(code)
			if !ok {
				t.Fatalf("unknown deny code %s", tc.want)
			}
			if got.status != status || got.body != extauthz.DenyBody(code) {
				t.Fatalf("%d %s; want %d %s", got.status, got.body, status, extauthz.DenyBody(code))
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q; want application/json", ct)
			}
			if len(reached) != max(tc.repeat, 1)-1 {
				t.Errorf("the app got %d requests; want %d", len(reached), max(tc.repeat, 1)-1)
			}
			ch := got.header.Values("WWW-Authenticate")
			if status == 401 && (len(ch) != 1 || !strings.Contains(ch[0], `realm="keygate"`)) {
				t.Errorf("401 with WWW-Authenticate %q; want one keygate challenge", ch)
			} else if status != 401 && len(ch) > 0 {
				t.Errorf("%d with WWW-Authenticate %q", status, ch)
			}
			if status == 429 {
				if n, err := strconv.Atoi(got.header.Get("Retry-After")); err != nil || n < 1 || n > 3600 {
					t.Errorf("429 with Retry-After %q; want 1..3600 seconds", got.header.Get("Retry-After"))
				}
			}
		})
	}
	t.Run("no_secret_in_keygate_log", func(t *testing.T) {
		out := kg.log.String()
		if !strings.Contains(out, `"code":"rate_limited"`) {
			t.Fatalf("keygate logged no decisions:\n%s", out)
		}
		for name, k := range w.keys {
			if strings.Contains(out, k) || strings.Contains(out, k[:20]) {
				t.Errorf("keygate's log holds the key of %s", name)
			}
		}
		if strings.Contains(out, w.jwt[:40]) || strings.Contains(out, "from=2024") {
			t.Error("keygate's log holds a token or a query")
		}
	})
}

// TestNginx runs proxies/nginx.conf with Debian's nginx in front of the
// app, with keygate deciding through auth_request.
func TestNginx(t *testing.T) {
	requireBinary(t, nginxBin)
	w, snap := newWorld(t)
	kg := startKeygate(t, snap)
	a := startApp(t)
	p := startNginx(t, kg.http, a.addr)
	runProxyCases(t, p, a, w, kg)
}

// TestCaddy runs proxies/Caddyfile with Debian's Caddy in front of the
// app, with keygate deciding through forward_auth.
func TestCaddy(t *testing.T) {
	requireBinary(t, caddyBin)
	w, snap := newWorld(t)
	kg := startKeygate(t, snap)
	a := startApp(t)
	p := startCaddy(t, kg.http, a.addr)
	runProxyCases(t, p, a, w, kg)
}

// TestKeygateDown: with keygate unreachable, or unable to decide, the
// proxies answer an error and never reach the app.
func TestKeygateDown(t *testing.T) {
	requireBinary(t, nginxBin)
	requireBinary(t, caddyBin)
	a := startApp(t)
	down := freePort(t) // nothing listens there
	for name, start := range map[string]func(*testing.T, string, string) *proxy{"nginx": startNginx, "caddy": startCaddy} {
		t.Run(name, func(t *testing.T) {
			p := start(t, down, a.addr)
			got := curl(t, "http://"+p.addr+"/v1/projects", "-H", "X-Test-Case: down-"+name, "-H", "X-API-Key: "+credentials.GenerateAPIKey())
			if got.status < 500 || len(a.requests("down-"+name)) != 0 {
				t.Fatalf("%d %s; want a 5xx and nothing at the app", got.status, got.body)
			}
			if name == "nginx" {
				var b struct{ Detail, Code string }
				if got.status != 503 || json.Unmarshal([]byte(got.body), &b) != nil || b.Code != "unavailable" {
					t.Errorf("nginx: %d %s; want 503 with a JSON body", got.status, got.body)
				}
			}
		})
	}
}
