package extauthz

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"github.com/keygate/keygate/credentials/credentialstest"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/keygate/keygate/bolt"
	"github.com/keygate/keygate/credentials"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// testKeys are the plaintext keys of the test store, by placeholder.
type testKeys map[string]string

// djangoKey returns a key like Python's secrets.token_urlsafe(32).
func djangoKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newStore opens a real bolt store in a temporary directory and fills it.
func newStore(t testing.TB) (*bolt.Store, testKeys) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "keygate.db"), bolt.Options{FlushInterval: -1, MasterKey: []byte(strings.Repeat("m", 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys := testKeys{}
	for _, name := range []string{"acme", "narrow", "disabled", "expired", "off", "dead", "ip", "limited", "noscope", "globex"} {
		keys[name] = credentials.GenerateAPIKey()
	}
	keys["django"] = djangoKey()
	djangoSum := sha256.Sum256([]byte(keys["django"]))
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(id, name string) credentials.APIKey { return credentials.APIKey{ID: id, Key: keys[name]} }
	keyList := func(k ...credentials.APIKey) *[]credentials.APIKey { return &k }
	expired := key("ak_expired", "expired")
	expired.ExpiresAt = &past
	disabled := key("ak_disabled", "disabled")
	disabled.Disabled = true
	narrow := key("ak_narrow", "narrow")
	narrow.Scopes = []string{"read:projects"}
	snap := credentials.Snapshot{
		Tenants: []credentials.Tenant{{Slug: "acme"}, {Slug: "globex"}, {Slug: "dead", Disabled: true}},
		Clients: []credentials.SnapshotClient{
			{Client: credentials.Client{ID: "cl_acme", Tenant: "acme", Roles: []string{"read", "write"}, Scopes: []string{"read:*", "write:projects"}},
				APIKeys: keyList(key("ak_acme", "acme"), narrow, disabled, expired,
					credentials.APIKey{ID: "ak_django", KeySHA256: hex.EncodeToString(djangoSum[:])})},
			{Client: credentials.Client{ID: "cl_off", Tenant: "acme", Disabled: true}, APIKeys: keyList(key("ak_off", "off"))},
			{Client: credentials.Client{ID: "cl_dead", Tenant: "dead"}, APIKeys: keyList(key("ak_dead", "dead"))},
			{Client: credentials.Client{ID: "cl_ip", Tenant: "acme", AllowedCIDRs: []string{"10.0.1.5/32"}}, APIKeys: keyList(key("ak_ip", "ip"))},
			{Client: credentials.Client{ID: "cl_limited", Tenant: "acme", RateLimit: "2/minute"}, APIKeys: keyList(key("ak_limited", "limited"))},
			{Client: credentials.Client{ID: "cl_noscope", Tenant: "acme"}, APIKeys: keyList(key("ak_noscope", "noscope"))},
			{Client: credentials.Client{ID: "cl_globex", Tenant: "globex", Scopes: []string{"read:projects"}}, APIKeys: keyList(key("ak_globex", "globex"))},
		},
	}
	// A JWT issuer of tenant acme with one Ed25519 key, and tokens it
	// signed (valid for an hour from now, so the golden answers hold).
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	snap.Issuers = []credentials.Issuer{{Tenant: "acme", Name: "idp", Issuer: "https://idp.example", Audiences: []string{"api"},
		Algorithms: []string{"EdDSA"}, RolesClaim: "roles",
		JWKS: &credentials.JWKS{Keys: []credentials.JWK{{Kty: "OKP", Crv: "Ed25519", Kid: "idp-1", X: base64.RawURLEncoding.EncodeToString(pub)}}}}}
	mint := func(extra jwt.MapClaims) string {
		now := time.Now()
		c := jwt.MapClaims{"iss": "https://idp.example", "aud": "api", "sub": "user-1", "iat": now.Unix(),
			"exp": now.Add(time.Hour).Unix(), "scope": "read:projects", "roles": []string{"read"}}
		for k, v := range extra {
			c[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = "idp-1"
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// HMAC keys: RFC 9421 for cl_acme, the legacy scheme for globex, and
	// requests signed now (a signed request is accepted once).
	hmacSecret := []byte(strings.Repeat("h", 32))
	snap.Clients[0].HMACKeys = &[]credentials.HMACKey{{ID: "hk_acme", Secret: base64.StdEncoding.EncodeToString(hmacSecret)}}
	snap.Clients[6].HMACKeys = &[]credentials.HMACKey{{ID: "hk_globex", Scheme: credentials.SchemeTimestampBody, Secret: base64.StdEncoding.EncodeToString(hmacSecret)}}
	sign := func(name, method, path, body, nonce string) {
		m := &credentials.HTTPMessage{Method: method, Authority: "api.example.com", Path: path, Scheme: "https"}
		h, err := credentials.SignRFC9421(m, []byte(body), "hk_acme", hmacSecret, time.Now(), nonce)
		if err != nil {
			t.Fatal(err)
		}
		keys[name+"_input"], keys[name+"_sig"], keys[name+"_digest"] = h["signature-input"], h["signature"], h["content-digest"]
	}
	sign("hmac_get", "GET", "/v1/projects", "", "n-get")
	sign("hmac_post", "POST", "/v1/projects?dry_run=1", `{"name":"apollo"}`, "n-post")
	sign("hmac_replay", "GET", "/v1/projects", "", "n-replay")
	sign("hmac_tampered", "POST", "/v1/projects", `{"name":"apollo"}`, "n-tampered")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	keys["legacy_ts"], keys["legacy_sig"] = ts, credentials.LegacySign(hmacSecret, ts, []byte(`{"event":"paid"}`))
	keys["jwt"] = mint(nil)
	keys["jwt_client"] = mint(jwt.MapClaims{"azp": "cl_acme", "sub": "service-account-acme"})
	keys["jwt_expired"] = mint(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})
	keys["jwt_other_aud"] = mint(jwt.MapClaims{"aud": "other"})
	keys["jwt_other_iss"] = mint(jwt.MapClaims{"iss": "https://evil.example"})

	ch, err := snap.Changes(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), ch, credentials.ApplyOptions{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return st, keys
}

// registrar is a Server or a NoopServer.
type registrar interface{ Register(*grpc.Server) }

// dial serves srv over bufconn with a real gRPC server configured as
// keygate serve configures it (4 MiB receive limit; a Server's responses
// pre-encoded) and returns a client.
func dial(t testing.TB, srv registrar) authv3.AuthorizationClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	opts := ServerOptions(4 << 20)
	if s, ok := srv.(*Server); ok {
		opts = append(opts, s.ServerOption())
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		<-done
	})
	return authv3.NewAuthorizationClient(conn)
}

// checkCase is one request as Envoy would send it.
type checkCase struct {
	name      string
	ext       map[string]string
	hdr       map[string]string // besides the pseudo-headers; values may hold {key} placeholders
	headerMap [][2]string       // when set, sent as header_map instead of headers
	path      string            // default /v1/projects
	method    string            // default GET
	body      string            // sent as raw_body, with its content-length
	src       string            // default 10.0.0.7
	repeat    int               // send this many times, compare the last
	want      string            // "ok", a deny code, or a gRPC code name for errors
}

func (c *checkCase) request(r *strings.Replacer) *authv3.CheckRequest {
	path := c.path
	if path == "" {
		path = "/v1/projects"
	}
	path = r.Replace(path)
	src := c.src
	if src == "" {
		src = "10.0.0.7"
	}
	id := "req-" + c.name
	method := c.method
	if method == "" {
		method = "GET"
	}
	hr := &authv3.AttributeContext_HttpRequest{
		Id: id, Method: method, Path: path, Host: "api.example.com", Scheme: "https", Protocol: "HTTP/1.1",
	}
	if c.body != "" {
		hr.RawBody = []byte(r.Replace(c.body))
	}
	if c.headerMap != nil {
		list := []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("GET")},
			{Key: ":path", RawValue: []byte(path)},
			{Key: ":authority", RawValue: []byte("api.example.com")},
			{Key: "x-request-id", RawValue: []byte(id)},
		}
		for _, kv := range c.headerMap {
			list = append(list, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(r.Replace(kv[1]))})
		}
		hr.HeaderMap = &corev3.HeaderMap{Headers: list}
	} else {
		hr.Headers = map[string]string{
			":method": method, ":path": path, ":authority": "api.example.com",
			"x-request-id": id, "user-agent": "curl/8.5.0", "x-forwarded-proto": "https",
		}
		if c.body != "" {
			hr.Headers["content-length"] = strconv.Itoa(len(hr.RawBody))
		}
		for k, v := range c.hdr {
			hr.Headers[k] = r.Replace(v)
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: src, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}},
		}}},
		Request:           &authv3.AttributeContext_Request{Http: hr},
		ContextExtensions: c.ext,
	}}
}

const jwtShaped = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"

var checkCases = []checkCase{
	{name: "allow_x_api_key", hdr: map[string]string{"x-api-key": "{acme}"}, want: "ok"},
	{name: "allow_authorization_apikey", hdr: map[string]string{"authorization": "ApiKey {acme}"}, want: "ok"},
	{name: "allow_authorization_token", hdr: map[string]string{"authorization": "Token {acme}"}, want: "ok"},
	{name: "allow_authorization_bearer_non_jwt", hdr: map[string]string{"authorization": "Bearer {acme}"}, want: "ok"},
	{name: "allow_same_key_twice", hdr: map[string]string{"authorization": "ApiKey {acme}", "x-api-key": "{acme}"}, want: "ok"},
	{name: "allow_spoofed_identity_headers", hdr: map[string]string{
		"x-api-key": "{noscope}", "x-tenant-id": "victim", "x-auth-subject": "cl_admin", "x-auth-client-id": "cl_admin",
		"x-auth-key-id": "ak_admin", "x-auth-method": "jwt", "x-auth-scopes": "admin:*"}, want: "ok"},
	{name: "deny_no_credential", want: "not_authenticated"},
	{name: "deny_other_authorization_scheme", hdr: map[string]string{"authorization": "Basic dXNlcjpwYXNz"}, want: "not_authenticated"},
	{name: "deny_malformed_key", hdr: map[string]string{"x-api-key": "kg_0000000000000000000000000000000000000000AAAAAA"}, want: "invalid_api_key"},
	{name: "deny_unknown_key", hdr: map[string]string{"x-api-key": "{unknown}"}, want: "invalid_api_key"},
	{name: "deny_disabled_key", hdr: map[string]string{"x-api-key": "{disabled}"}, want: "invalid_api_key"},
	{name: "deny_expired_key", hdr: map[string]string{"x-api-key": "{expired}"}, want: "invalid_api_key"},
	{name: "deny_key_of_disabled_client", hdr: map[string]string{"x-api-key": "{off}"}, want: "invalid_api_key"},
	{name: "deny_key_of_disabled_tenant", hdr: map[string]string{"authorization": "ApiKey {dead}"}, want: "invalid_api_key"},
	{name: "deny_key_and_jwt", hdr: map[string]string{"x-api-key": "{acme}", "authorization": "Bearer " + jwtShaped}, want: "ambiguous_credentials"},
	{name: "deny_merged_x_api_key", hdr: map[string]string{"x-api-key": "{acme},{narrow}"}, want: "invalid_api_key"},
	{name: "deny_authorization_over_8k", hdr: map[string]string{"authorization": "ApiKey " + strings.Repeat("a", 8<<10)}, want: "not_authenticated"},
	{name: "deny_jwt_not_valid", hdr: map[string]string{"authorization": "Bearer " + jwtShaped}, want: "token_not_valid"},
	{name: "deny_signature_only", hdr: map[string]string{"signature-input": `sig1=("@method");keyid="hk_x"`, "signature": "sig1=:c2ln:"}, want: "invalid_signature"},
	{name: "deny_query_key_not_opted_in", path: "/v1/projects?api_key={acme}&page=2", want: "not_authenticated"},
	{name: "allow_query_key", ext: map[string]string{"keygate.query_key": "true"}, path: "/v1/projects?page=2&api_key={acme}", want: "ok"},
	{name: "deny_query_key_repeated", ext: map[string]string{"keygate.query_key": "true"}, path: "/v1/projects?api_key={acme}&api_key={acme}", want: "ambiguous_credentials"},
	{name: "deny_query_key_and_header", ext: map[string]string{"keygate.query_key": "true"}, path: "/v1/projects?api_key={acme}", hdr: map[string]string{"x-api-key": "{narrow}"}, want: "ambiguous_credentials"},
	{name: "allow_cookie_key", ext: map[string]string{"keygate.cookie_key": "kg_session"}, hdr: map[string]string{"cookie": "theme=dark; kg_session={acme}; lang=en"}, want: "ok"},
	{name: "allow_cookie_key_only_cookie", ext: map[string]string{"keygate.cookie_key": "kg_session"}, hdr: map[string]string{"cookie": "kg_session={acme}"}, want: "ok"},
	{name: "deny_cookie_key_not_opted_in", hdr: map[string]string{"cookie": "kg_session={acme}"}, want: "not_authenticated"},
	{name: "allow_scope_wildcard", ext: map[string]string{"keygate.scopes": "read:projects,read:users"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "ok"},
	{name: "deny_scope_missing", ext: map[string]string{"keygate.scopes": "admin:all"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "insufficient_scope"},
	{name: "deny_key_scope_narrower", ext: map[string]string{"keygate.scopes": "write:projects"}, hdr: map[string]string{"x-api-key": "{narrow}"}, want: "insufficient_scope"},
	{name: "allow_key_scope_narrower", ext: map[string]string{"keygate.scopes": "read:projects"}, hdr: map[string]string{"x-api-key": "{narrow}"}, want: "ok"},
	{name: "allow_role", ext: map[string]string{"keygate.roles": "write"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "ok"},
	{name: "deny_role_missing", ext: map[string]string{"keygate.roles": "admin"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "insufficient_scope"},
	{name: "deny_tenant_mismatch", ext: map[string]string{"keygate.tenant": "globex"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "forbidden"},
	{name: "allow_tenant_match", ext: map[string]string{"keygate.tenant": "globex"}, hdr: map[string]string{"x-api-key": "{globex}"}, want: "ok"},
	{name: "allow_cidr_peer", src: "10.0.1.5", hdr: map[string]string{"x-api-key": "{ip}"}, want: "ok"},
	{name: "deny_cidr_spoofed_xff", src: "192.0.2.10", hdr: map[string]string{"x-api-key": "{ip}", "x-forwarded-for": "10.0.1.5"}, want: "ip_not_allowed"},
	{name: "deny_rate_limited", hdr: map[string]string{"x-api-key": "{limited}"}, repeat: 3, want: "rate_limited"},
	{name: "allow_anonymous_no_credential", ext: map[string]string{"keygate.anonymous": "true"}, hdr: map[string]string{"x-tenant-id": "victim", "x-auth-scopes": "admin:*"}, want: "ok"},
	{name: "allow_anonymous_valid_credential", ext: map[string]string{"keygate.anonymous": "true"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "ok"},
	{name: "deny_anonymous_invalid_credential", ext: map[string]string{"keygate.anonymous": "true"}, hdr: map[string]string{"x-api-key": "{unknown}"}, want: "invalid_api_key"},
	{name: "deny_method_not_accepted", ext: map[string]string{"keygate.methods": "jwt,hmac"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "not_authenticated"},
	{name: "allow_header_map", headerMap: [][2]string{{"x-api-key", "{acme}"}, {"x-tenant-id", "victim"}}, hdr: nil, want: "ok"},
	{name: "deny_header_map_repeated_key", headerMap: [][2]string{{"x-api-key", "{acme}"}, {"x-api-key", "{acme}"}}, want: "invalid_api_key"},
	{name: "allow_django_key_authorization", hdr: map[string]string{"authorization": "ApiKey {django}"}, want: "ok"},
	{name: "allow_django_key_x_api_key", hdr: map[string]string{"x-api-key": "{django}"}, want: "ok"},
	{name: "allow_jwt", hdr: map[string]string{"authorization": "Bearer {jwt}", "x-tenant-id": "victim"}, want: "ok"},
	{name: "allow_jwt_keep", ext: map[string]string{"keygate.keep_jwt": "true"}, hdr: map[string]string{"authorization": "Bearer {jwt}"}, want: "ok"},
	{name: "allow_jwt_of_client", hdr: map[string]string{"authorization": "Bearer {jwt_client}"}, want: "ok"},
	{name: "allow_jwt_scope_and_role", ext: map[string]string{"keygate.scopes": "read:projects", "keygate.roles": "read"}, hdr: map[string]string{"authorization": "Bearer {jwt}"}, want: "ok"},
	{name: "deny_jwt_expired", hdr: map[string]string{"authorization": "Bearer {jwt_expired}"}, want: "token_not_valid"},
	{name: "deny_jwt_other_audience", hdr: map[string]string{"authorization": "Bearer {jwt_other_aud}"}, want: "token_not_valid"},
	{name: "deny_jwt_unknown_issuer", hdr: map[string]string{"authorization": "Bearer {jwt_other_iss}"}, want: "token_not_valid"},
	{name: "deny_jwt_scope_missing", ext: map[string]string{"keygate.scopes": "write:projects"}, hdr: map[string]string{"authorization": "Bearer {jwt}"}, want: "insufficient_scope"},
	{name: "deny_jwt_tenant_mismatch", ext: map[string]string{"keygate.tenant": "globex"}, hdr: map[string]string{"authorization": "Bearer {jwt}"}, want: "forbidden"},
	{name: "deny_jwt_not_accepted", ext: map[string]string{"keygate.methods": "apikey"}, hdr: map[string]string{"authorization": "Bearer {jwt}"}, want: "not_authenticated"},
	{name: "deny_jwt_and_key", hdr: map[string]string{"authorization": "Bearer {jwt}", "x-api-key": "{acme}"}, want: "ambiguous_credentials"},
	{name: "allow_hmac_rfc9421_get", hdr: map[string]string{"signature-input": "{hmac_get_input}", "signature": "{hmac_get_sig}", "x-tenant-id": "victim"}, want: "ok"},
	{name: "allow_hmac_rfc9421_post", method: "POST", path: "/v1/projects?dry_run=1", body: `{"name":"apollo"}`,
		hdr: map[string]string{"signature-input": "{hmac_post_input}", "signature": "{hmac_post_sig}", "content-digest": "{hmac_post_digest}"}, want: "ok"},
	{name: "deny_hmac_replay", repeat: 2, hdr: map[string]string{"signature-input": "{hmac_replay_input}", "signature": "{hmac_replay_sig}"}, want: "invalid_signature"},
	{name: "deny_hmac_body_changed", method: "POST", body: `{"name":"apollO"}`,
		hdr: map[string]string{"signature-input": "{hmac_tampered_input}", "signature": "{hmac_tampered_sig}", "content-digest": "{hmac_tampered_digest}"}, want: "invalid_signature"},
	{name: "deny_hmac_not_accepted", ext: map[string]string{"keygate.methods": "apikey"}, hdr: map[string]string{"signature-input": "{hmac_get_input}", "signature": "{hmac_get_sig}"}, want: "not_authenticated"},
	{name: "allow_hmac_legacy", method: "POST", body: `{"event":"paid"}`,
		hdr: map[string]string{"x-signature": "{legacy_sig}", "x-timestamp": "{legacy_ts}", "x-tenant-id": "globex"}, want: "ok"},
	{name: "error_unknown_extension", ext: map[string]string{"keygate.scope": "read:projects"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "Internal"},
	{name: "error_bad_extension_value", ext: map[string]string{"keygate.anonymous": "yes"}, want: "Internal"},
	{name: "allow_other_extensions_ignored", ext: map[string]string{"virtual_host": "api", "envoy.route": "x"}, hdr: map[string]string{"x-api-key": "{acme}"}, want: "ok"},
}

// sameToCaller lists cases whose denies must look identical to the caller.
var sameToCaller = []string{"deny_unknown_key", "deny_disabled_key", "deny_expired_key", "deny_key_of_disabled_client", "deny_key_of_disabled_tenant", "deny_malformed_key", "deny_merged_x_api_key"}

// stableJSON renders resp as protojson re-indented by encoding/json, so
// map ordering and protojson's whitespace are stable.
func stableJSON(t testing.TB, resp *authv3.CheckResponse) []byte {
	t.Helper()
	b, err := protojson.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func debugLogger(buf *credentialstest.LogBuffer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, buf, zapcore.DebugLevel))
}

func decisionOf(resp *authv3.CheckResponse) string {
	if resp.GetOkResponse() != nil {
		return "ok"
	}
	return resp.GetDynamicMetadata().GetFields()["code"].GetStringValue()
}

func TestCheck(t *testing.T) {
	st, keys := newStore(t)
	keys["unknown"] = credentials.GenerateAPIKey()
	var logs credentialstest.LogBuffer
	srv := NewServer(&credentials.Checker{Source: st}, Options{Logger: debugLogger(&logs)})
	client := dial(t, srv)
	var pairs []string
	for k, v := range keys {
		pairs = append(pairs, "{"+k+"}", v)
	}
	repl := strings.NewReplacer(pairs...)

	responses := map[string]*authv3.CheckResponse{}
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.request(repl)
			var resp *authv3.CheckResponse
			var err error
			for range max(tc.repeat, 1) {
				resp, err = client.Check(context.Background(), req)
			}
			if err != nil {
				if got := status.Code(err).String(); got != tc.want {
					t.Fatalf("Check: %v; want %s", err, tc.want)
				}
				if resp != nil {
					t.Fatalf("error with a response: %v", resp)
				}
				return
			}
			if got := decisionOf(resp); got != tc.want {
				t.Fatalf("decision %q; want %q\n%s", got, tc.want, stableJSON(t, resp))
			}
			responses[tc.name] = resp
			compareGolden(t, tc.name, stableJSON(t, resp))
		})
	}

	t.Run("same_to_caller", func(t *testing.T) {
		first := responses[sameToCaller[0]]
		for _, name := range sameToCaller[1:] {
			if diff := cmp.Diff(first.GetDeniedResponse(), responses[name].GetDeniedResponse(), protocmp.Transform()); diff != "" {
				t.Errorf("%s differs from %s to the caller:\n%s", name, sameToCaller[0], diff)
			}
			if first.GetStatus().GetCode() != responses[name].GetStatus().GetCode() {
				t.Errorf("%s: status differs", name)
			}
		}
	})

	t.Run("allow_response_invariants", func(t *testing.T) {
		for name, resp := range responses {
			ok := resp.GetOkResponse()
			if ok == nil {
				continue
			}
			set := map[string]bool{}
			for _, h := range ok.GetHeaders() {
				//lint:ignore SA1019 Envoy still honours the deprecated append field: it must stay unset
				if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || h.GetAppend() != nil {
					t.Errorf("%s: header %s is not overwritten", name, h.GetHeader().GetKey())
				}
				set[h.GetHeader().GetKey()] = true
			}
			for _, r := range ok.GetHeadersToRemove() {
				if set[r] {
					t.Errorf("%s: %s both set and removed", name, r)
				}
			}
			for _, h := range identityHeaderSet {
				if !set[h] && !contains(ok.GetHeadersToRemove(), h) {
					t.Errorf("%s: identity header %s neither set nor removed", name, h)
				}
			}
		}
	})

	t.Run("logs_hold_no_secret", func(t *testing.T) {
		out := logs.String()
		if testing.Verbose() {
			t.Log(out)
		}
		if !strings.Contains(out, `"code":"invalid_api_key"`) || !strings.Contains(out, `"request_id":"req-deny_unknown_key"`) {
			t.Fatalf("decision log lines missing:\n%s", out)
		}
		secrets := []string{jwtShaped, "dXNlcjpwYXNz", "api_key=", "page=2", "theme=dark", "lang=en", "c2ln", strings.Repeat("a", 64)}
		for name, k := range keys {
			if strings.HasSuffix(name, "_digest") || name == "legacy_ts" || len(k) < 32 {
				continue // not secrets: a body digest, a timestamp
			}
			secrets = append(secrets, k, k[:16], k[len(k)-16:])
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("log output contains a secret or query value %q", s)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCheckTrustedHops: with one trusted hop the source is the rightmost
// X-Forwarded-For entry, never the peer or an entry further left.
func TestCheckTrustedHops(t *testing.T) {
	st, keys := newStore(t)
	srv := NewServer(&credentials.Checker{Source: st}, Options{TrustedHops: 1})
	client := dial(t, srv)
	repl := strings.NewReplacer("{ip}", keys["ip"])
	for _, tc := range []struct {
		xff, want string
	}{
		{"10.0.1.5", "ok"},
		{"198.51.100.1, 10.0.1.5", "ok"},
		{"10.0.1.5, 198.51.100.1", "ip_not_allowed"},
		{"", "ip_not_allowed"},
		{"not-an-ip", "ip_not_allowed"},
	} {
		c := checkCase{name: "hops", src: "10.0.1.5", hdr: map[string]string{"x-api-key": "{ip}"}}
		if tc.xff != "" {
			c.hdr["x-forwarded-for"] = tc.xff
		}
		resp, err := client.Check(context.Background(), c.request(repl))
		if err != nil {
			t.Fatal(err)
		}
		if got := decisionOf(resp); got != tc.want {
			t.Errorf("xff %q: %s; want %s", tc.xff, got, tc.want)
		}
	}
}

// TestCheckOversized: a 5 MB CheckRequest is refused by gRPC, never allowed.
func TestCheckOversized(t *testing.T) {
	st, keys := newStore(t)
	client := dial(t, NewServer(&credentials.Checker{Source: st}, Options{}))
	c := checkCase{name: "big", hdr: map[string]string{"x-api-key": keys["acme"]}}
	req := c.request(strings.NewReplacer())
	req.Attributes.Request.Http.Body = strings.Repeat("x", 5<<20)
	resp, err := client.Check(context.Background(), req)
	if err == nil {
		t.Fatalf("5 MB request answered: %v", decisionOf(resp))
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("error %v; want ResourceExhausted", err)
	}
}

// indexFunc is an IndexSource for a store that is not loaded yet.
type indexFunc func() *credentials.Index

func (f indexFunc) Index() *credentials.Index { return f() }

// TestCheckCannotDecide: no index, a cancelled or expired context → a
// gRPC error, never a response.
func TestCheckCannotDecide(t *testing.T) {
	st, keys := newStore(t)
	req := (&checkCase{name: "x", hdr: map[string]string{"x-api-key": keys["acme"]}}).request(strings.NewReplacer())

	notLoaded := NewServer(&credentials.Checker{Source: indexFunc(func() *credentials.Index { return nil })}, Options{})
	if resp, err := notLoaded.Check(context.Background(), req); status.Code(err) != codes.Unavailable || resp != nil {
		t.Errorf("store not loaded: %v, %v; want Unavailable", resp, err)
	}

	srv := NewServer(&credentials.Checker{Source: st}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if resp, err := srv.Check(ctx, req); status.Code(err) != codes.Canceled || resp != nil {
		t.Errorf("cancelled: %v, %v; want Canceled", resp, err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if resp, err := srv.Check(ctx, req); status.Code(err) != codes.DeadlineExceeded || resp != nil {
		t.Errorf("deadline: %v, %v; want DeadlineExceeded", resp, err)
	}
	if resp, err := srv.Check(context.Background(), nil); err != nil || decisionOf(resp) != "not_authenticated" {
		t.Errorf("nil request: %v, %v; want not_authenticated", resp, err)
	}
}

// TestCheckConcurrent runs allows and denies from many goroutines (for
// -race) and checks that shared responses are never mixed up.
func TestCheckConcurrent(t *testing.T) {
	st, keys := newStore(t)
	client := dial(t, NewServer(&credentials.Checker{Source: st}, Options{}))
	repl := strings.NewReplacer("{acme}", keys["acme"], "{globex}", keys["globex"])
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := checkCase{name: "c", hdr: map[string]string{"x-api-key": []string{"{acme}", "{globex}", "nope"}[i%3]}}
			want := []string{"acme", "globex", ""}[i%3]
			req := c.request(repl)
			for range 50 {
				resp, err := client.Check(context.Background(), req)
				if err != nil {
					t.Error(err)
					return
				}
				got := resp.GetDynamicMetadata().GetFields()["tenant_id"].GetStringValue()
				if got != want {
					t.Errorf("tenant %q; want %q", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestDenyTable checks the one table against SPEC §3.
func TestDenyTable(t *testing.T) {
	want := map[credentials.DenyCode]int{
		credentials.NotAuthenticated: 401, credentials.AmbiguousCredentials: 401, credentials.InvalidAPIKey: 401,
		credentials.InvalidSignature: 401, credentials.TokenNotValid: 401, credentials.InsufficientScope: 403,
		credentials.IPNotAllowed: 403, credentials.Forbidden: 403, credentials.RateLimited: 429,
	}
	for code, st := range want {
		got, _, detail, ok := DenyStatus(code)
		if !ok || got != st || detail == "" {
			t.Errorf("%s: %d %q %v; want %d", code, got, detail, ok, st)
		}
		var body struct{ Detail, Code string }
		if err := json.Unmarshal([]byte(DenyBody(code)), &body); err != nil || body.Code != string(code) || body.Detail != detail {
			t.Errorf("%s: body %s", code, DenyBody(code))
		}
	}
	if _, _, _, ok := DenyStatus(credentials.Allow); ok {
		t.Error("Allow has a deny status")
	}
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {30 * time.Second, 30}} {
		if got := retryAfterSeconds(c.d); got != c.want {
			t.Errorf("retryAfterSeconds(%v) = %d; want %d", c.d, got, c.want)
		}
	}
}

// TestMetrics: every Check is counted once under its code and method.
func TestMetrics(t *testing.T) {
	st, keys := newStore(t)
	srv := NewServer(&credentials.Checker{Source: st}, Options{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(srv.Collectors()...)
	ok := (&checkCase{name: "m", hdr: map[string]string{"x-api-key": keys["acme"]}}).request(strings.NewReplacer())
	none := (&checkCase{name: "m"}).request(strings.NewReplacer())
	bad := (&checkCase{name: "m", ext: map[string]string{"keygate.nope": "1"}}).request(strings.NewReplacer())
	for _, req := range []*authv3.CheckRequest{ok, ok, none, bad} {
		srv.Check(context.Background(), req)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	histograms := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "keygate_check_total":
				var code, method string
				for _, l := range m.GetLabel() {
					if l.GetName() == "code" {
						code = l.GetValue()
					} else {
						method = l.GetValue()
					}
				}
				got[code+"/"+method] = m.GetCounter().GetValue()
			case "keygate_check_duration_seconds":
				histograms++
				if n := m.GetHistogram().GetSampleCount(); n != 4 {
					t.Errorf("duration samples %d; want 4", n)
				}
			}
		}
	}
	for k, want := range map[string]float64{"ok/apikey": 2, "not_authenticated/none": 1, "error/none": 1, "invalid_api_key/apikey": 0, "rate_limited/jwt": 0} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("keygate_check_total %s = %v (present %v); want %v", k, v, ok, want)
		}
	}
	if histograms != 1 {
		t.Errorf("%d duration histograms; want 1", histograms)
	}
}
