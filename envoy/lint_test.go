package envoy

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/keygate/keygate/credentials"
)

// identityHeaders are the headers keygate sets on allow (SPEC §3). Whatever
// carries them to the upstream must overwrite a client's copy, never append.
var identityHeaders = []string{"x-tenant-id", "x-auth-subject", "x-auth-client-id", "x-auth-key-id", "x-auth-method", "x-auth-scopes"}

// credentialHeaders are the request headers keygate reads credentials from
// (SPEC §3). If Envoy does not send one, keygate can neither use it nor see
// that a request carries two credentials, and the upstream gets it unchecked.
var credentialHeaders = []string{"authorization", "x-api-key", "cookie", "signature", "signature-input", "content-digest", "x-signature", "x-timestamp", "x-tenant-id"}

// maxBodyBytes bounds with_request_body: keygate refuses a CheckRequest over
// --max-request-bytes (4 MiB by default) with an error, which Envoy turns
// into status_on_error for every request on the route.
const maxBodyBytes = 4 << 20

// lint returns what is unsafe about a config, one line per problem, each
// starting with where it is. The rules are listed in envoy/README.md.
func lint(b *bootstrapv3.Bootstrap) ([]string, error) {
	all, err := nodes(b)
	if err != nil {
		return nil, err
	}
	l := &linter{clusters: map[string]*clusterv3.Cluster{}}
	for _, c := range b.GetStaticResources().GetClusters() {
		l.clusters[c.GetName()] = c
	}
	if a := b.GetAdmin().GetAddress(); a != nil && !loopback(a) {
		l.addf(".admin.address", "the admin interface listens on %s: bind it to 127.0.0.1 or a pipe (it can quit Envoy and change its state)", addrString(a))
	}
	for _, n := range all {
		switch m := n.msg.(type) {
		case *hcmv3.HttpConnectionManager:
			l.hcm(n.path, m)
		case *extauthzv3.ExtAuthz:
			l.extAuthz(n.path, m)
		case *extauthzv3.CheckSettings:
			l.checkSettings(n.path, m)
		case *extauthzv3.BufferSettings:
			l.bufferSettings(n.path, m)
		case *extauthzv3.ExtAuthzPerRoute:
			if m.GetDisabled() {
				l.disabledAt(n.path, n)
			}
		}
	}
	sort.Strings(l.problems)
	return l.problems, nil
}

type linter struct {
	clusters map[string]*clusterv3.Cluster
	problems []string
}

func (l *linter) addf(path, format string, args ...any) {
	l.problems = append(l.problems, or(path, ".")+": "+fmt.Sprintf(format, args...))
}

// extAuthz: keygate fails closed, on time, in every request.
func (l *linter) extAuthz(path string, ea *extauthzv3.ExtAuthz) {
	if ea.GetFailureModeAllow() {
		l.addf(path, "failure_mode_allow: true lets every request through while keygate is down or slow")
	}
	switch s := ea.GetStatusOnError(); {
	case s == nil:
		l.addf(path, "status_on_error is not set: set {code: ServiceUnavailable} so an outage is told apart from a deny")
	case s.GetCode() < 400:
		l.addf(path, "status_on_error %d is not an error status: a 2xx would answer the client as if it were allowed", s.GetCode())
	}
	if ea.GetShadowMode() {
		l.addf(path, "shadow_mode: true never denies a request")
	}
	if ea.GetFilterEnabled() != nil {
		l.addf(path, "filter_enabled lets runtime switch keygate off for a share of requests")
	}
	if ea.GetFilterEnabledMetadata() != nil {
		l.addf(path, "filter_enabled_metadata lets request metadata switch keygate off")
	}
	if ea.GetClearRouteCache() {
		l.addf(path, "clear_route_cache: true re-routes the request after the check, possibly to a route whose keygate settings were never checked")
	}
	grpc := ea.GetGrpcService() != nil
	switch {
	case grpc:
		if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
			l.addf(path, "transport_api_version must be V3 (keygate speaks envoy.service.auth.v3)")
		}
		l.grpcService(path+".grpc_service", ea.GetGrpcService())
	case ea.GetHttpService() != nil:
		l.httpService(path+".http_service", ea.GetHttpService())
	default:
		l.addf(path, "neither grpc_service nor http_service is set")
	}
	// Headers sent to keygate.
	for _, h := range credentialHeaders {
		sent := ea.GetAllowedHeaders() == nil && grpc || matchesAny(ea.GetAllowedHeaders(), h) || !grpc && h == "authorization"
		if !sent || matchesAny(ea.GetDisallowedHeaders(), h) {
			l.addf(path, "the %s header is not sent to keygate: add it to allowed_headers (and keep it out of disallowed_headers)", h)
		}
	}
}

func (l *linter) grpcService(path string, g *corev3.GrpcService) {
	if d := g.GetTimeout(); d == nil || d.AsDuration() <= 0 {
		l.addf(path, "no timeout: set one (e.g. 0.25s) so a stuck keygate becomes status_on_error, not a hung request")
	}
	if name := g.GetEnvoyGrpc().GetClusterName(); name != "" {
		c, ok := l.clusters[name]
		switch {
		case !ok:
			l.addf(path, "cluster %q is not defined", name)
		case !http2(c):
			l.addf(path, "cluster %q does not speak HTTP/2, which gRPC needs: set typed_extension_protocol_options envoy.extensions.upstreams.http.v3.HttpProtocolOptions explicit_http_config.http2_protocol_options", name)
		}
	}
}

func (l *linter) httpService(path string, h *extauthzv3.HttpService) {
	if d := h.GetServerUri().GetTimeout(); d == nil || d.AsDuration() <= 0 {
		l.addf(path, "server_uri has no timeout")
	}
	if name := h.GetServerUri().GetCluster(); name != "" {
		if _, ok := l.clusters[name]; !ok {
			l.addf(path, "cluster %q is not defined", name)
		}
	}
	resp := h.GetAuthorizationResponse()
	for _, hdr := range identityHeaders {
		if !matchesAny(resp.GetAllowedUpstreamHeaders(), hdr) {
			l.addf(path, "authorization_response.allowed_upstream_headers does not match %s: keygate's value would be dropped and a client's %s would reach the upstream", hdr, hdr)
		}
		if matchesAny(resp.GetAllowedUpstreamHeadersToAppend(), hdr) {
			l.addf(path, "authorization_response.allowed_upstream_headers_to_append matches %s: a client's value would be kept beside keygate's; it must be overwritten", hdr)
		}
	}
}

// checkSettings: the route settings are ones keygate accepts, and a service
// override fails closed as the filter does.
func (l *linter) checkSettings(path string, cs *extauthzv3.CheckSettings) {
	if _, err := credentials.ParsePolicy(cs.GetContextExtensions(), credentials.DefaultPolicy); err != nil {
		l.addf(path, "context_extensions: %v (keygate refuses the route with gRPC INTERNAL on every request)", err)
	}
	if g := cs.GetGrpcService(); g != nil {
		l.grpcService(path+".grpc_service", g)
	}
	if h := cs.GetHttpService(); h != nil {
		l.httpService(path+".http_service", h)
	}
}

// bufferSettings: HMAC needs the whole body, byte for byte.
func (l *linter) bufferSettings(path string, bs *extauthzv3.BufferSettings) {
	if bs.GetAllowPartialMessage() {
		l.addf(path, "allow_partial_message: true sends keygate a truncated body: Content-Digest cannot be checked; leave it false (Envoy answers 413)")
	}
	if !bs.GetPackAsBytes() {
		l.addf(path, "pack_as_bytes is not true: the body goes as a UTF-8 string and a binary body no longer matches its Content-Digest")
	}
	if n := bs.GetMaxRequestBytes(); n == 0 || n >= maxBodyBytes {
		l.addf(path, "max_request_bytes %d: must be above 0 and below keygate's 4 MiB CheckRequest limit", n)
	}
}

// disabledAt: ext_authz may be switched off only on a route that matches one
// exact path, never on a prefix, a regex or a whole virtual host.
func (l *linter) disabledAt(path string, n node) {
	var owner proto.Message
	for i := len(n.parents) - 1; i >= 0; i-- {
		if _, ok := n.parents[i].(*routev3.FilterConfig); !ok {
			owner = n.parents[i]
			break
		}
	}
	if r, ok := owner.(*routev3.Route); ok && r.GetMatch().GetPath() != "" {
		return
	}
	l.addf(path, "ext_authz is disabled here; only a route that matches one exact path (match: {path: /healthz}) may switch keygate off")
}

// hcm: the connection manager in front of keygate.
func (l *linter) hcm(path string, h *hcmv3.HttpConnectionManager) {
	if h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_REJECT_REQUEST {
		l.addf(path, "common_http_protocol_options.headers_with_underscores_action is not REJECT_REQUEST: x_tenant_id would pass keygate and reach upstreams that read it as x-tenant-id")
	}
	if !h.GetUseRemoteAddress().GetValue() {
		l.addf(path, "use_remote_address is not true: Envoy would trust the client's x-forwarded-for and not append the peer")
	}
	if !h.GetNormalizePath().GetValue() {
		l.addf(path, "normalize_path is not true: Envoy, keygate and the upstream may read different paths")
	}
	if !h.GetMergeSlashes() {
		l.addf(path, "merge_slashes is not true: //v1/admin would miss the /v1/admin route")
	}
	switch h.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_REJECT_REQUEST, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT, hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
	default:
		l.addf(path, "path_with_escaped_slashes_action keeps %%2F in paths: set REJECT_REQUEST so a route and the upstream cannot disagree on the path")
	}

	// Filter order: CORS, then ext_authz, then the router, last.
	kinds := map[string]string{} // filter name → cors, ext_authz, router, other
	authz := map[string]*extauthzv3.ExtAuthz{}
	firstAuthz, router := -1, -1
	filters := h.GetHttpFilters()
	for i, f := range filters {
		kind := filterKind(f)
		kinds[f.GetName()] = kind
		fpath := fmt.Sprintf("%s.http_filters[%d]", path, i)
		switch kind {
		case "ext_authz":
			if firstAuthz < 0 {
				firstAuthz = i
			}
			if f.GetDisabled() {
				l.addf(fpath, "the ext_authz filter is disabled by default (disabled: true): keygate checks only routes that turn it on")
			}
			if f.GetTypedConfig() == nil {
				l.addf(fpath, "ext_authz without typed_config: the lint cannot see how it fails; configure it inline")
			} else if ea, err := f.GetTypedConfig().UnmarshalNew(); err == nil {
				authz[f.GetName()], _ = ea.(*extauthzv3.ExtAuthz)
			}
		case "router":
			if router < 0 {
				router = i
			}
		}
	}
	switch {
	case firstAuthz < 0:
		l.addf(path, "no ext_authz filter: this listener's requests are never checked by keygate")
	case router < 0:
		l.addf(path, "no router filter")
	}
	if router >= 0 {
		for i := router + 1; i < len(filters); i++ {
			l.addf(fmt.Sprintf("%s.http_filters[%d]", path, i), "%s comes after the router, so it never runs: the router must be the last filter", filters[i].GetName())
		}
	}
	if firstAuthz >= 0 {
		for i := firstAuthz + 1; i < len(filters); i++ {
			if kinds[filters[i].GetName()] == "cors" {
				l.addf(fmt.Sprintf("%s.http_filters[%d]", path, i), "the CORS filter comes after ext_authz: browser preflights carry no credential and would get keygate's 401; put CORS first")
			}
		}
	}

	rc := h.GetRouteConfig()
	if rc == nil {
		return // RDS or scoped routes: only the per-message rules apply
	}
	rpath := path + ".route_config"
	l.perFilter(rpath, rc.GetTypedPerFilterConfig(), nil, kinds, authz)
	for i, vh := range rc.GetVirtualHosts() {
		vpath := fmt.Sprintf("%s.virtual_hosts[%d]", rpath, i)
		l.perFilter(vpath, vh.GetTypedPerFilterConfig(), nil, kinds, authz)
		for j, r := range vh.GetRoutes() {
			path := fmt.Sprintf("%s.routes[%d]", vpath, j)
			l.perFilter(path, r.GetTypedPerFilterConfig(), r, kinds, authz)
			for _, hm := range r.GetMatch().GetHeaders() {
				if name := strings.ToLower(hm.GetName()); slices.Contains(identityHeaders, name) {
					l.addf(path, "the route matches on %s, which the client wrote: Envoy picks the route before keygate overwrites the header", name)
				}
			}
			if c := r.GetRoute().GetCluster(); c != "" {
				if _, ok := l.clusters[c]; !ok {
					l.addf(path, "cluster %q is not defined", c)
				}
			}
			for k, w := range r.GetRoute().GetWeightedClusters().GetClusters() {
				wpath := fmt.Sprintf("%s.route.weighted_clusters.clusters[%d]", path, k)
				l.perFilter(wpath, w.GetTypedPerFilterConfig(), nil, kinds, authz)
				if _, ok := l.clusters[w.GetName()]; !ok {
					l.addf(wpath, "cluster %q is not defined", w.GetName())
				}
			}
		}
	}
}

// perFilter checks one typed_per_filter_config map against the filters of
// its connection manager. route is the owning route, or nil for a route
// configuration, virtual host or weighted cluster.
func (l *linter) perFilter(path string, m map[string]*anypb.Any, route *routev3.Route, kinds map[string]string, authz map[string]*extauthzv3.ExtAuthz) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		kpath := fmt.Sprintf("%s.typed_per_filter_config[%s]", path, key)
		cfg, err := m[key].UnmarshalNew()
		if err != nil {
			continue // reported by nodes()
		}
		disabled := false
		if fc, ok := cfg.(*routev3.FilterConfig); ok {
			disabled = fc.GetDisabled()
			cfg = nil
			if fc.GetConfig() != nil {
				cfg, _ = fc.GetConfig().UnmarshalNew()
			}
		}
		per, isPer := cfg.(*extauthzv3.ExtAuthzPerRoute)
		kind, known := kinds[key]
		switch {
		case !known:
			l.addf(kpath, "%q names no filter of this connection manager: Envoy never applies this config", key)
			continue
		case isPer && kind != "ext_authz":
			l.addf(kpath, "ExtAuthzPerRoute under %q, which is not an ext_authz filter: Envoy never applies it and keygate checks the route with its default policy", key)
			continue
		case kind == "ext_authz" && cfg != nil && !isPer:
			l.addf(kpath, "a %s under the ext_authz filter's name; want ExtAuthzPerRoute", cfg.ProtoReflect().Descriptor().FullName())
			continue
		case kind != "ext_authz":
			continue
		}
		// FilterConfig{disabled: true} turns ext_authz off as
		// ExtAuthzPerRoute{disabled: true} does (that one is checked where it
		// is found, in lint).
		if disabled && (route == nil || route.GetMatch().GetPath() == "") {
			l.addf(kpath, "ext_authz is disabled here; only a route that matches one exact path (match: {path: /healthz}) may switch keygate off")
		}
		cs := per.GetCheckSettings()
		if ea := authz[key]; ea != nil && ea.GetHttpService() != nil && len(cs.GetContextExtensions()) > 0 && cs.GetGrpcService() == nil {
			l.addf(kpath, "context_extensions with an http_service ext_authz: Envoy sends them only in gRPC mode, so keygate would check this route with its default policy")
		}
	}
}

// filterKind tells what an HTTP filter is, by its typed config or, without
// one, by its name.
func filterKind(f *hcmv3.HttpFilter) string {
	if tc := f.GetTypedConfig(); tc != nil {
		switch {
		case tc.MessageIs(&extauthzv3.ExtAuthz{}):
			return "ext_authz"
		case tc.MessageIs(&corsv3.Cors{}):
			return "cors"
		case tc.MessageIs(&routerv3.Router{}):
			return "router"
		}
		return "other"
	}
	switch f.GetName() {
	case "envoy.filters.http.ext_authz":
		return "ext_authz"
	case "envoy.filters.http.cors":
		return "cors"
	case "envoy.filters.http.router":
		return "router"
	}
	return "other"
}

// http2 reports whether a cluster talks HTTP/2 to its endpoints.
func http2(c *clusterv3.Cluster) bool {
	//lint:ignore SA1019 the deprecated field still configures HTTP/2 in Envoy
	if c.GetHttp2ProtocolOptions() != nil {
		return true
	}
	a := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if a == nil {
		return false
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return false
	}
	o, _ := m.(*upstreamhttpv3.HttpProtocolOptions)
	return o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// matchesAny reports whether a header name matches a ListStringMatcher
// (Envoy's exact, prefix, suffix, contains and RE2 regex matchers).
func matchesAny(list *matcherv3.ListStringMatcher, name string) bool {
	for _, m := range list.GetPatterns() {
		if matchString(m, name) {
			return true
		}
	}
	return false
}

func matchString(m *matcherv3.StringMatcher, s string) bool {
	eq := func(a, b string) bool { return a == b }
	if m.GetIgnoreCase() {
		s = strings.ToLower(s)
		eq = strings.EqualFold
	}
	lower := func(p string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(p)
		}
		return p
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return eq(s, p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, lower(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, lower(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(s, lower(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		return err == nil && re.MatchString(s)
	}
	return false
}

func loopback(a *corev3.Address) bool {
	if a.GetPipe() != nil {
		return true
	}
	host := a.GetSocketAddress().GetAddress()
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func addrString(a *corev3.Address) string {
	if s := a.GetSocketAddress(); s != nil {
		return fmt.Sprintf("%s:%d", s.GetAddress(), s.GetPortValue())
	}
	return a.String()
}

// TestConfigsLint runs the lint on every config this package ships and on
// every k8s/**/envoy*.yaml.
func TestConfigsLint(t *testing.T) {
	for _, f := range configFiles(t) {
		t.Run(f, func(t *testing.T) {
			cs, err := loadFile(t, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				problems, err := lint(c.bootstrap)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				for _, p := range problems {
					t.Errorf("%s: %s", c.name, p)
				}
			}
		})
	}
}

// TestUnsafeConfigsRejected proves the lint catches what it claims to: each
// testdata/unsafe file decodes and validates (Envoy would load it) and breaks
// exactly one rule, the one its "# want:" line names.
func TestUnsafeConfigsRejected(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "unsafe", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d testdata/unsafe/*.yaml", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wantLine(t, f)
			cs, err := loadFile(t, f)
			if err != nil {
				t.Fatalf("does not decode, so it proves nothing about the lint: %v", err)
			}
			if len(cs) != 1 {
				t.Fatalf("%d configs in the file, want 1", len(cs))
			}
			if err := validateConfig(cs[0].bootstrap); err != nil {
				t.Fatalf("does not validate, so it proves nothing about the lint: %v", err)
			}
			problems, err := lint(cs[0].bootstrap)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != 1 || !strings.Contains(problems[0], want) {
				t.Fatalf("lint found %d problem(s) %q; want exactly one containing %q", len(problems), problems, want)
			}
		})
	}
}

// TestBaselineIsSafe checks the config every unsafe file is derived from:
// without it, a problem in the baseline would hide in every variant.
func TestBaselineIsSafe(t *testing.T) {
	for _, f := range []string{"baseline.yaml", "baseline-http.yaml"} {
		t.Run(f, func(t *testing.T) {
			cs, err := loadFile(t, filepath.Join("testdata", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := validateConfig(cs[0].bootstrap); err != nil {
				t.Fatal(err)
			}
			problems, err := lint(cs[0].bootstrap)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) > 0 {
				t.Fatalf("baseline has problems: %q", problems)
			}
		})
	}
}

// TestMatchString pins the header-name matching the HTTP-mode rules rely on.
func TestMatchString(t *testing.T) {
	for _, tc := range []struct {
		m    *matcherv3.StringMatcher
		s    string
		want bool
	}{
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "x-tenant-id"}}, "x-tenant-id", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "X-Tenant-Id"}}, "x-tenant-id", false},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "X-Tenant-Id"}, IgnoreCase: true}, "x-tenant-id", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "x-auth-"}}, "x-auth-scopes", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "-id"}}, "x-tenant-id", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "tenant"}}, "x-tenant-id", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "x-auth-.*"}}}, "x-auth-method", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "auth"}}}, "x-auth-method", false},
	} {
		if got := matchString(tc.m, tc.s); got != tc.want {
			t.Errorf("matchString(%v, %q) = %v, want %v", tc.m, tc.s, got, tc.want)
		}
	}
}
