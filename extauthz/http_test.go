package extauthz

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/credentials/credentialstest"
)

// httpAnswer is what an HTTP check request got back.
type httpAnswer struct {
	status int
	header http.Header
	body   string
}

// serveHTTP starts the HTTP check handler of srv on a real 127.0.0.1
// listener and returns its base URL and client.
func serveHTTP(t testing.TB, srv *Server, next http.Handler) (string, *http.Client) {
	t.Helper()
	ts := httptest.NewServer(srv.HTTPHandler(next))
	t.Cleanup(ts.Close)
	return ts.URL, ts.Client()
}

func do(t testing.TB, c *http.Client, req *http.Request) httpAnswer {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpAnswer{resp.StatusCode, resp.Header, string(b)}
}

// settingHeaderOf returns the X-Keygate-* header of a keygate.* extension
// ("" for other extensions, which HTTP mode has no way to send).
func settingHeaderOf(ext string) string {
	rest, ok := strings.CutPrefix(ext, "keygate.")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "_")
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return "X-Keygate-" + strings.Join(parts, "-")
}

// envoyRequest is c as Envoy's http_service sends it with path_prefix
// /check: the original method, path, Host and headers; X-Keygate-* for the
// route settings and X-Real-IP for the source address (set by Envoy's
// headers_to_add).
func envoyRequest(t testing.TB, base string, c *checkCase, r *strings.Replacer) *http.Request {
	t.Helper()
	g := c.request(r).GetAttributes().GetRequest().GetHttp()
	var body io.Reader
	if len(g.GetRawBody()) > 0 {
		body = strings.NewReader(string(g.GetRawBody()))
	}
	req, err := http.NewRequest(g.GetMethod(), base+"/check"+g.GetPath(), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "api.example.com"
	for k, v := range g.GetHeaders() {
		if strings.HasPrefix(k, ":") || k == "content-length" {
			continue
		}
		req.Header.Set(k, v)
	}
	for _, hv := range g.GetHeaderMap().GetHeaders() {
		if !strings.HasPrefix(hv.GetKey(), ":") {
			req.Header.Add(hv.GetKey(), string(hv.GetRawValue()))
		}
	}
	for k, v := range c.ext {
		if name := settingHeaderOf(k); name != "" {
			req.Header.Set(name, v)
		}
	}
	src := c.src
	if src == "" {
		src = "10.0.0.7"
	}
	req.Header.Set("X-Real-IP", src)
	return req
}

// TestHTTPCheckSameAsGRPC sends every gRPC check case through Envoy's
// HTTP mode (/check/<path>) and compares the answer with the gRPC answer
// of a server over the same store: same allow headers, same deny status,
// headers and body, 500 where gRPC says Internal.
func TestHTTPCheckSameAsGRPC(t *testing.T) {
	st, keys := newStore(t)
	keys["unknown"] = credentials.GenerateAPIKey()
	var pairs []string
	for k, v := range keys {
		pairs = append(pairs, "{"+k+"}", v)
	}
	repl := strings.NewReplacer(pairs...)
	// Two checkers, so rate limits and replay caches do not interfere.
	client := dial(t, NewServer(&credentials.Checker{Source: st}, Options{}))
	base, hc := serveHTTP(t, NewServer(&credentials.Checker{Source: st}, Options{}), nil)

	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			var resp *authv3.CheckResponse
			var err error
			var got httpAnswer
			for range max(tc.repeat, 1) {
				resp, err = client.Check(context.Background(), tc.request(repl))
				got = do(t, hc, envoyRequest(t, base, &tc, repl))
			}
			if err != nil {
				if got.status != http.StatusInternalServerError || got.header.Get("Content-Type") != "application/json" {
					t.Fatalf("gRPC %v; HTTP %d %s", err, got.status, got.body)
				}
				var b struct{ Detail, Code string }
				if json.Unmarshal([]byte(got.body), &b) != nil || b.Code != "internal" || !strings.Contains(b.Detail, "route settings") {
					t.Errorf("HTTP error body %s (gRPC: %s)", got.body, status.Convert(err).Message())
				}
				return
			}
			if ok := resp.GetOkResponse(); ok != nil {
				if got.status != http.StatusOK {
					t.Fatalf("gRPC allows; HTTP %d %s", got.status, got.body)
				}
				for _, h := range ok.GetHeaders() {
					if v := got.header.Values(h.GetHeader().GetKey()); len(v) != 1 || v[0] != h.GetHeader().GetValue() {
						t.Errorf("header %s = %q; want %q", h.GetHeader().GetKey(), v, h.GetHeader().GetValue())
					}
				}
				remove := strings.Split(got.header.Get(HeaderHeadersToRemove), ",")
				for _, name := range ok.GetHeadersToRemove() {
					if !slices.Contains(remove, name) {
						t.Errorf("%s = %q lacks %s", HeaderHeadersToRemove, remove, name)
					}
				}
				for _, name := range identityHeaderSet {
					if got.header.Get(name) == "" && !slices.Contains(remove, name) {
						t.Errorf("identity header %s neither set nor removed", name)
					}
				}
				if got.header.Get(HeaderBody) != "" {
					t.Errorf("allow carries %s", HeaderBody)
				}
				return
			}
			dr := resp.GetDeniedResponse()
			if got.status != int(dr.GetStatus().GetCode()) || got.body != dr.GetBody() {
				t.Fatalf("HTTP %d %s; gRPC %d %s", got.status, got.body, dr.GetStatus().GetCode(), dr.GetBody())
			}
			for _, h := range dr.GetHeaders() {
				k, want := h.GetHeader().GetKey(), h.GetHeader().GetValue()
				v := got.header.Values(k)
				if k == "retry-after" && len(v) == 1 {
					a, _ := strconv.Atoi(v[0])
					b, _ := strconv.Atoi(want)
					if a-b <= 1 && b-a <= 1 && a >= 1 {
						continue // two buckets, refilled a moment apart
					}
				}
				if len(v) != 1 || v[0] != want {
					t.Errorf("deny header %s = %q; want %q", k, v, want)
				}
			}
			if got.header.Get(HeaderHeadersToRemove) != "" {
				t.Errorf("deny carries %s", HeaderHeadersToRemove)
			}
		})
	}
}

// headerCase is one nginx-style or forward-auth check request.
type headerCase struct {
	name string
	hdr  [][2]string // values may hold {key} placeholders
	want int
	code string // deny or error code; "" for an allow
}

// TestHTTPCheckHeaderModes covers /check with the original request in
// X-Original-* (nginx) and X-Forwarded-* (Traefik, Caddy) headers.
func TestHTTPCheckHeaderModes(t *testing.T) {
	st, keys := newStore(t)
	var logs credentialstest.LogBuffer
	base, hc := serveHTTP(t, NewServer(&credentials.Checker{Source: st}, Options{Logger: debugLogger(&logs)}), nil)
	var pairs []string
	for k, v := range keys {
		pairs = append(pairs, "{"+k+"}", v)
	}
	repl := strings.NewReplacer(pairs...)
	nginx := func(uri string, more ...[2]string) [][2]string {
		return append([][2]string{{"X-Original-URI", uri}, {"X-Original-Method", "GET"}}, more...)
	}
	fwd := func(uri string, more ...[2]string) [][2]string {
		return append([][2]string{{"X-Forwarded-Uri", uri}, {"X-Forwarded-Method", "GET"},
			{"X-Forwarded-Host", "api.example.com"}, {"X-Forwarded-Proto", "https"}}, more...)
	}
	key := func(name string) [2]string { return [2]string{"X-Api-Key", "{" + name + "}"} }
	cases := []headerCase{
		{"nginx_allow", nginx("/v1/projects", key("acme"), [2]string{"X-Tenant-ID", "victim"}), 200, ""},
		{"forward_allow", fwd("/v1/projects", key("acme")), 200, ""},
		{"nginx_no_credential", nginx("/v1/projects"), 401, "not_authenticated"},
		{"nginx_unknown_key", nginx("/v1/projects", key("unknown")), 401, "invalid_api_key"},
		{"forward_scope", fwd("/v1/projects", key("narrow"), [2]string{"X-Keygate-Scopes", "write:projects"}), 403, "insufficient_scope"},
		{"nginx_tenant", nginx("/v1/projects", key("acme"), [2]string{"X-Keygate-Tenant", "globex"}), 403, "forbidden"},
		{"nginx_query_key", nginx("/v1/projects?page=2&api_key={acme}", [2]string{"X-Keygate-Query-Key", "true"}), 200, ""},
		{"nginx_query_key_not_opted_in", nginx("/v1/projects?api_key={acme}"), 401, "not_authenticated"},
		// A proxy strips ?api_key= by its literal name: an encoded name would reach the upstream.
		{"nginx_query_key_encoded_name", nginx("/v1/projects?api%5Fkey={acme}", [2]string{"X-Keygate-Query-Key", "true"}), 401, "invalid_api_key"},
		{"forward_cookie_key", fwd("/v1/projects", [2]string{"Cookie", "a=1; kg={acme}"}, [2]string{"X-Keygate-Cookie-Key", "kg"}), 200, ""},
		{"nginx_anonymous", nginx("/v1/projects", [2]string{"X-Keygate-Anonymous", "true"}), 200, ""},
		{"nginx_anonymous_cleared", nginx("/v1/projects", [2]string{"X-Keygate-Anonymous", ""}), 401, "not_authenticated"},
		{"nginx_jwt", nginx("/v1/projects", [2]string{"Authorization", "Bearer {jwt}"}), 200, ""},
		{"nginx_methods", nginx("/v1/projects", [2]string{"Authorization", "Bearer {jwt}"}, [2]string{"X-Keygate-Methods", "apikey"}), 401, "not_authenticated"},
		{"nginx_repeated_key", nginx("/v1/projects", key("acme"), key("acme")), 401, "invalid_api_key"},
		// The body never reaches keygate in these modes: signatures fail closed.
		{"nginx_hmac_fails_closed", nginx("/v1/projects", [2]string{"Signature-Input", "{hmac_get_input}"}, [2]string{"Signature", "{hmac_get_sig}"}), 401, "invalid_signature"},
		{"both_families", nginx("/v1/projects", key("acme"), [2]string{"X-Forwarded-Uri", "/admin"}), 500, "internal"},
		{"repeated_original_uri", nginx("/v1/projects", key("acme"), [2]string{"X-Original-URI", "/admin"}), 500, "internal"},
		{"no_original", [][2]string{key("acme")}, 500, "internal"},
		{"original_not_a_path", nginx("v1/projects", key("acme")), 500, "internal"},
		{"unknown_setting", nginx("/v1/projects", key("acme"), [2]string{"X-Keygate-Scope", "read:projects"}), 500, "internal"},
		{"repeated_setting", nginx("/v1/projects", key("acme"), [2]string{"X-Keygate-Scopes", "read:projects"}, [2]string{"X-Keygate-Scopes", ""}), 500, "internal"},
		{"bad_setting", nginx("/v1/projects", key("acme"), [2]string{"X-Keygate-Anonymous", "yes"}), 500, "internal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, base+"/check", nil)
			if err != nil {
				t.Fatal(err)
			}
			nginxMode := false
			for _, kv := range tc.hdr {
				req.Header.Add(kv[0], repl.Replace(kv[1]))
				nginxMode = nginxMode || kv[0] == "X-Original-URI"
			}
			got := do(t, hc, req)
			if got.status != tc.want {
				t.Fatalf("status %d %s; want %d", got.status, got.body, tc.want)
			}
			if got.header.Get(HeaderHeadersToRemove) != "" {
				t.Errorf("%s on a header-mode answer", HeaderHeadersToRemove)
			}
			if tc.code == "" {
				if got.header.Get(HeaderBody) != "" || got.body != "" {
					t.Errorf("allow with a body: %q %q", got.header.Get(HeaderBody), got.body)
				}
				if got.header.Get(HeaderTenantID) == "" && !strings.Contains(tc.name, "anonymous") {
					t.Errorf("allow without %s", HeaderTenantID)
				}
				if v := got.header.Values(HeaderTenantID); len(v) > 0 && v[0] == "victim" {
					t.Errorf("client's x-tenant-id echoed")
				}
				return
			}
			var b struct{ Detail, Code string }
			if err := json.Unmarshal([]byte(got.body), &b); err != nil || b.Code != tc.code {
				t.Fatalf("body %s; want code %s", got.body, tc.code)
			}
			if got.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", got.header.Get("Content-Type"))
			}
			if tc.want < 500 && got.body != DenyBody(credentials.DenyCode(tc.code)) {
				t.Errorf("body %s; want %s", got.body, DenyBody(credentials.DenyCode(tc.code)))
			}
			if (tc.want == 401) != (got.header.Get("WWW-Authenticate") != "") {
				t.Errorf("status %d with WWW-Authenticate %q", tc.want, got.header.Get("WWW-Authenticate"))
			}
			// nginx cannot read a subrequest's body: the same JSON in a header.
			if hb := got.header.Get(HeaderBody); nginxMode && hb != got.body || !nginxMode && hb != "" {
				t.Errorf("%s = %q (nginx mode %v); body %s", HeaderBody, hb, nginxMode, got.body)
			}
		})
	}

	t.Run("logs_hold_no_secret", func(t *testing.T) {
		out := logs.String()
		if !strings.Contains(out, `"path":"/v1/projects"`) || !strings.Contains(out, `"code":"invalid_api_key"`) {
			t.Fatalf("decision log lines missing:\n%s", out)
		}
		for name, k := range keys {
			if strings.HasSuffix(name, "_digest") || name == "legacy_ts" || len(k) < 32 {
				continue
			}
			if strings.Contains(out, k) || strings.Contains(out, k[:16]) {
				t.Errorf("log holds the secret %s", name)
			}
		}
		if strings.Contains(out, "page=2") {
			t.Error("log holds the query")
		}
	})
}

// TestHTTPCheckSourceIP: X-Real-IP counts only from a trusted peer; an
// untrusted peer (the proxy) leaves the source unknown, so allowlists
// fail closed.
func TestHTTPCheckSourceIP(t *testing.T) {
	st, keys := newStore(t)
	check := func(t *testing.T, o Options, hdr ...[2]string) string {
		t.Helper()
		base, hc := serveHTTP(t, NewServer(&credentials.Checker{Source: st}, o), nil)
		req, _ := http.NewRequest(http.MethodGet, base+"/check/v1/projects", nil)
		req.Header.Set("X-Api-Key", keys["ip"])
		for _, kv := range hdr {
			req.Header.Add(kv[0], kv[1])
		}
		got := do(t, hc, req)
		if got.status == http.StatusOK {
			return "ok"
		}
		var b struct{ Code string }
		json.Unmarshal([]byte(got.body), &b)
		return b.Code
	}
	realIP := func(v string) [2]string { return [2]string{"X-Real-IP", v} }
	xff := func(v string) [2]string { return [2]string{"X-Forwarded-For", v} }
	elsewhere := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	for _, tc := range []struct {
		name string
		o    Options
		hdr  [][2]string
		want string
	}{
		{"loopback_real_ip", Options{}, [][2]string{realIP("10.0.1.5")}, "ok"},
		{"loopback_real_ip_other", Options{}, [][2]string{realIP("198.51.100.7")}, "ip_not_allowed"},
		{"loopback_no_real_ip", Options{}, nil, "ip_not_allowed"},
		{"xff_ignored_without_hops", Options{}, [][2]string{xff("10.0.1.5")}, "ip_not_allowed"},
		{"xff_with_hops", Options{TrustedHops: 1}, [][2]string{xff("198.51.100.7, 10.0.1.5")}, "ok"},
		{"xff_with_hops_spoofed_left", Options{TrustedHops: 1}, [][2]string{xff("10.0.1.5, 198.51.100.7")}, "ip_not_allowed"},
		{"real_ip_wins_over_xff", Options{TrustedHops: 1}, [][2]string{realIP("198.51.100.7"), xff("10.0.1.5")}, "ip_not_allowed"},
		{"repeated_real_ip", Options{}, [][2]string{realIP("10.0.1.5"), realIP("10.0.1.5")}, "ip_not_allowed"},
		{"bad_real_ip", Options{}, [][2]string{realIP("10.0.1.5x")}, "ip_not_allowed"},
		{"untrusted_peer", Options{TrustedProxies: elsewhere}, [][2]string{realIP("10.0.1.5")}, "ip_not_allowed"},
		{"untrusted_peer_hops", Options{TrustedProxies: elsewhere, TrustedHops: 1}, [][2]string{xff("10.0.1.5")}, "ip_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := check(t, tc.o, tc.hdr...); got != tc.want {
				t.Errorf("%s; want %s", got, tc.want)
			}
		})
	}
}

// TestHTTPCheckCannotDecide: store not loaded → 503 JSON, never 200.
func TestHTTPCheckCannotDecide(t *testing.T) {
	_, keys := newStore(t)
	srv := NewServer(&credentials.Checker{Source: indexFunc(func() *credentials.Index { return nil })}, Options{})
	base, hc := serveHTTP(t, srv, nil)
	for _, target := range []string{"/check/v1/projects", "/check"} {
		req, _ := http.NewRequest(http.MethodGet, base+target, nil)
		req.Header.Set("X-Api-Key", keys["acme"])
		req.Header.Set("X-Original-URI", "/v1/projects")
		got := do(t, hc, req)
		var b struct{ Detail, Code string }
		if got.status != http.StatusServiceUnavailable || json.Unmarshal([]byte(got.body), &b) != nil || b.Code != "unavailable" ||
			got.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s; want 503 unavailable JSON", target, got.status, got.body)
		}
	}
}

// TestHTTPCheckBody: Envoy's forwarded body is what an HMAC signature is
// checked against; bodies over MaxRequestBytes are refused with 413.
func TestHTTPCheckBody(t *testing.T) {
	st, keys := newStore(t)
	base, hc := serveHTTP(t, NewServer(&credentials.Checker{Source: st}, Options{MaxRequestBytes: 64 << 10}), nil)
	post := func(body io.Reader, hdr map[string]string) httpAnswer {
		req, _ := http.NewRequest(http.MethodPost, base+"/check/v1/projects", body)
		req.Host = "api.example.com"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return do(t, hc, req)
	}
	legacy := map[string]string{"X-Signature": keys["legacy_sig"], "X-Timestamp": keys["legacy_ts"], "X-Tenant-ID": "globex"}
	if got := post(strings.NewReader(`{"event":"paid!"}`), legacy); got.status != 401 || got.body != DenyBody(credentials.InvalidSignature) {
		t.Errorf("changed body: %d %s; want invalid_signature", got.status, got.body)
	}
	if got := post(nil, legacy); got.status != 401 {
		t.Errorf("body not forwarded: %d %s; want 401", got.status, got.body)
	}
	if got := post(strings.NewReader(`{"event":"paid"}`), legacy); got.status != 200 || got.header.Get(HeaderTenantID) != "globex" {
		t.Errorf("signed body: %d %s; want 200 globex", got.status, got.body)
	}
	big := strings.Repeat("x", 64<<10+1)
	for name, body := range map[string]io.Reader{
		"content_length": strings.NewReader(big),
		"chunked":        io.MultiReader(strings.NewReader(big)), // unknown length: sent chunked
	} {
		got := post(body, map[string]string{"X-Api-Key": keys["acme"]})
		var b struct{ Code string }
		if got.status != http.StatusRequestEntityTooLarge || json.Unmarshal([]byte(got.body), &b) != nil || b.Code != "request_too_large" {
			t.Errorf("%s: %d %s; want 413 JSON", name, got.status, got.body)
		}
	}
	if got := post(strings.NewReader(strings.Repeat("x", 64<<10)), map[string]string{"X-Api-Key": keys["acme"]}); got.status != 200 {
		t.Errorf("body at the limit: %d %s; want 200", got.status, got.body)
	}
}

// TestHTTPCheckRouting: only /check and /check/... are checks, matched on
// the raw target (no cleaning, no redirect); the rest goes to next.
func TestHTTPCheckRouting(t *testing.T) {
	st, keys := newStore(t)
	var logs credentialstest.LogBuffer
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next "+r.URL.Path) })
	base, hc := serveHTTP(t, NewServer(&credentials.Checker{Source: st}, Options{Logger: debugLogger(&logs)}), next)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(target string) httpAnswer {
		req, _ := http.NewRequest(http.MethodGet, base+target, nil)
		req.Header.Set("X-Api-Key", keys["acme"])
		return do(t, hc, req)
	}
	for target, want := range map[string]string{"/checkout": "next /checkout", "/healthz": "next /healthz", "/chec": "next /chec"} {
		if got := get(target); got.status != 200 || got.body != want {
			t.Errorf("%s: %d %q; want %q", target, got.status, got.body, want)
		}
	}
	for _, target := range []string{"/check/v1/a/../b", "/check//v1//x", "/check/v1/%2e%2e/admin?x=1"} {
		got := get(target)
		if got.status != 200 || got.header.Get(HeaderTenantID) != "acme" {
			t.Errorf("%s: %d %s; want an allow", target, got.status, got.body)
		}
	}
	if !strings.Contains(logs.String(), `"path":"/v1/a/../b"`) || !strings.Contains(logs.String(), `"path":"/v1/%2e%2e/admin"`) {
		t.Errorf("the log does not name the raw original paths:\n%s", logs.String())
	}
	base2, hc2 := serveHTTP(t, NewServer(&credentials.Checker{Source: st}, Options{}), nil)
	req, _ := http.NewRequest(http.MethodGet, base2+"/metrics", nil)
	if got := do(t, hc2, req); got.status != http.StatusNotFound {
		t.Errorf("no next: %d; want 404", got.status)
	}
}

// TestHTTPCheckMetrics: HTTP checks are counted with the gRPC ones.
func TestHTTPCheckMetrics(t *testing.T) {
	st, keys := newStore(t)
	srv := NewServer(&credentials.Checker{Source: st}, Options{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(srv.Collectors()...)
	base, hc := serveHTTP(t, srv, nil)
	for _, hdr := range []map[string]string{
		{"X-Api-Key": keys["acme"]}, {"X-Api-Key": keys["acme"]}, {}, {"X-Keygate-Nope": "1"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/check/v1/projects", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		do(t, hc, req)
	}
	if _, err := srv.Check(context.Background(), (&checkCase{name: "m"}).request(strings.NewReplacer())); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "keygate_check_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l [2]string
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "code" {
					l[0] = lp.GetValue()
				} else {
					l[1] = lp.GetValue()
				}
			}
			got[l] = m.GetCounter().GetValue()
		}
	}
	for labels, want := range map[[2]string]float64{{"ok", "apikey"}: 2, {"not_authenticated", "none"}: 2, {"error", "none"}: 1} {
		if got[labels] != want {
			t.Errorf("keygate_check_total%v = %v; want %v", labels, got[labels], want)
		}
	}
}

// BenchmarkHTTPCheckAllow measures an allow over HTTP check mode (a real
// loopback HTTP/1.1 connection, nginx style).
func BenchmarkHTTPCheckAllow(b *testing.B) {
	st, keys := newStore(b)
	base, hc := serveHTTP(b, NewServer(&credentials.Checker{Source: st}, Options{}), nil)
	req, _ := http.NewRequest(http.MethodGet, base+"/check", nil)
	req.Header.Set("X-Api-Key", keys["acme"])
	req.Header.Set("X-Original-URI", "/v1/projects")
	req.Header.Set("X-Original-Method", "GET")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}
