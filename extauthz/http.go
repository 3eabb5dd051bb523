package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/keygate/keygate/credentials"
)

// CheckPath is the path of HTTP check mode: "/check" with the original
// request in X-Original-* or X-Forwarded-* headers, and "/check/<original
// path>" for Envoy's http_service with path_prefix "/check".
const CheckPath = "/check"

// Header names of HTTP check mode (canonical form).
const (
	// HeaderBody carries, on every non-200 answer to an nginx-style check
	// (X-Original-URI), the JSON body of the answer: nginx's auth_request
	// drops the body of the subrequest but can read its headers.
	HeaderBody = "X-Keygate-Body"
	// HeaderHeadersToRemove lists, on a 200 to Envoy's http_service, the
	// request headers Envoy must remove before the request goes upstream.
	HeaderHeadersToRemove = "X-Envoy-Auth-Headers-To-Remove"
)

// settingHeaders maps the request headers that carry per-route settings in
// HTTP check mode (proxies cannot send context extensions) to the
// keygate.* names of credentials.ParsePolicy.
var settingHeaders = map[string]string{
	"X-Keygate-Methods":    credentials.ExtMethods,
	"X-Keygate-Scopes":     credentials.ExtScopes,
	"X-Keygate-Roles":      credentials.ExtRoles,
	"X-Keygate-Tenant":     credentials.ExtTenant,
	"X-Keygate-Anonymous":  credentials.ExtAnonymous,
	"X-Keygate-Query-Key":  credentials.ExtQueryKey,
	"X-Keygate-Cookie-Key": credentials.ExtCookieKey,
	"X-Keygate-Keep-Jwt":   credentials.ExtKeepJWT,
}

// loopback is the default set of trusted HTTP check peers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// errBodyTooLarge is the error of an HTTP check request whose body is over
// the limit.
var errBodyTooLarge = errors.New("check request body too large")

// httpMode is how an HTTP check request names the original request.
type httpMode uint8

const (
	modeOriginal  httpMode = iota + 1 // nginx auth_request: X-Original-URI, X-Original-Method
	modeForwarded                     // Traefik/Caddy forward auth: X-Forwarded-Uri, -Method, -Host, -Proto
	modeEnvoy                         // Envoy http_service: /check/<original path>
)

// HTTPHandler returns the handler of HTTP check mode (SPEC §3, §7). It
// answers "/check" and "/check/..." (matched on the raw request target,
// so Envoy's original path is never cleaned or redirected) with the same
// decision, deny table, identity headers, metrics and decision log as
// Check, and passes every other request to next (nil: 404).
//
// The original request:
//   - "/check" with X-Original-URI (path and query) and X-Original-Method
//     (nginx), or X-Forwarded-Uri, X-Forwarded-Method, X-Forwarded-Host and
//     X-Forwarded-Proto (Traefik, Caddy). Both families at once, or a
//     repeated one, is refused (500): a client could otherwise smuggle the
//     family the proxy does not overwrite. The body is never read (these
//     proxies do not forward it), so HMAC-signed requests are checked as
//     requests whose body keygate did not see and are denied.
//   - "/check/<path>?<query>": Envoy's http_service; method, Host and the
//     headers (those Envoy's allowed_headers forward) are the original
//     request's, the body is the original body when Envoy forwards it.
//
// Per-route settings come from X-Keygate-Methods, -Scopes, -Roles,
// -Tenant, -Anonymous, -Query-Key, -Cookie-Key and -Keep-JWT, parsed as
// the keygate.* context extensions; an empty value is no setting. The
// proxy must set or clear every one of them: keygate cannot tell its
// values from a client's. An unknown X-Keygate-* header, a repeated one or
// a bad value is refused (500), never ignored.
//
// The source address is X-Real-IP, believed only from a trusted peer
// (Options.TrustedProxies, loopback by default); from a trusted peer
// without X-Real-IP, the X-Forwarded-For entry TrustedHops from the right
// when TrustedHops > 0. Otherwise it is unknown (the zero address), so IP
// allowlists fail closed: the peer is the proxy, never the client.
//
// Answers: 200 with the identity headers it sets (and, for Envoy, the
// credential and identity headers to remove in
// X-Envoy-Auth-Headers-To-Remove); a deny's status, headers and JSON body
// exactly as in the gRPC DeniedHttpResponse; 413 for a body over
// MaxRequestBytes; 500 for bad route settings or check requests; 503 when
// keygate cannot decide (store not loaded). Never 200 without an allow.
func (s *Server) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := checkTarget(r)
		if !ok {
			if next == nil {
				http.NotFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		s.serveCheck(w, r, rest)
	})
}

// checkTarget returns the raw request target after "/check" ("" or
// "?..." for "/check", "/..." for Envoy's prefix); ok is false for other
// paths.
func checkTarget(r *http.Request) (rest string, ok bool) {
	t := r.RequestURI
	if t == "" || t[0] != '/' { // absolute form, or a request built in process
		t = r.URL.EscapedPath()
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			t += "?" + r.URL.RawQuery
		}
	}
	rest, ok = strings.CutPrefix(t, CheckPath)
	if !ok || (rest != "" && rest[0] != '?' && rest[0] != '/') {
		return "", false
	}
	return rest, true
}

// serveCheck answers one HTTP check request; rest is checkTarget's.
func (s *Server) serveCheck(w http.ResponseWriter, r *http.Request, rest string) {
	start := time.Now()
	hdr := r.Header
	var h headers
	h.readHTTP(hdr)
	mode, scheme, err := h.original(r, rest)
	bodyHeader := mode == modeOriginal || (mode == 0 && len(hdr.Values("X-Original-Uri")) > 0)
	if err != nil {
		s.fail(&h, start, "invalid check request", err)
		s.writeError(w, http.StatusInternalServerError, "internal", "keygate: invalid check request: "+err.Error(), bodyHeader)
		return
	}
	if r.ContentLength > s.maxBody {
		s.fail(&h, start, "check request body too large", errBodyTooLarge)
		s.writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "Request body too large.", bodyHeader)
		return
	}
	var body []byte
	if mode == modeEnvoy && r.Body != nil && r.ContentLength != 0 {
		body, err = io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
		switch {
		case int64(len(body)) > s.maxBody:
			s.fail(&h, start, "check request body too large", errBodyTooLarge)
			s.writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "Request body too large.", bodyHeader)
			return
		case err != nil:
			s.fail(&h, start, "reading the check request body", err)
			s.writeError(w, http.StatusBadRequest, "bad_request", "keygate: cannot read the check request body.", bodyHeader)
			return
		}
	}

	pol, err := httpPolicy(hdr, s.def)
	if err != nil {
		s.fail(&h, start, "invalid route settings", err)
		s.writeError(w, http.StatusInternalServerError, "internal", "keygate: invalid route settings: "+err.Error(), bodyHeader)
		return
	}
	req := credentials.Request{Policy: pol, SourceIP: s.httpSourceIP(r, &h)}
	if h.signature {
		req.Signed = signedFields(httpLookup(hdr), &h, scheme)
		if mode == modeEnvoy {
			// Envoy sets Content-Length to the size of the body it
			// forwards, so the framing read above describes body.
			req.Signed.Body = body
		} else {
			// The proxy did not forward the body: whether the original
			// request had one is unknown, so a signature is checked as
			// over a body keygate did not see (and fails closed).
			req.Signed.BodyPartial, req.Signed.Chunked = true, true
		}
	}
	d, i, err := s.decide(r.Context(), start, &h, &req, mode != modeEnvoy)
	switch {
	case errors.Is(err, errUnknownDecision):
		s.writeError(w, http.StatusInternalServerError, "internal", "keygate: internal error", bodyHeader)
		return
	case err != nil:
		status, code, detail := httpCheckError(err)
		s.writeError(w, status, code, detail, bodyHeader)
		return
	case i == idxOK:
		s.writeAllow(w, &h, &req, &d, mode == modeEnvoy)
		return
	}
	resp := s.deny(i, &d).GetDeniedResponse()
	wh := w.Header()
	for _, o := range resp.GetHeaders() {
		wh.Set(o.GetHeader().GetKey(), o.GetHeader().GetValue())
	}
	if bodyHeader {
		wh.Set(HeaderBody, resp.GetBody())
	}
	w.WriteHeader(int(resp.GetStatus().GetCode()))
	io.WriteString(w, resp.GetBody())
}

// writeAllow answers an allow: the identity headers keygate sets and, for
// Envoy, the headers to remove (identity headers it does not set, the
// credential it consumed, a consumed cookie).
func (s *Server) writeAllow(w http.ResponseWriter, h *headers, r *credentials.Request, d *credentials.Decision, envoy bool) {
	ok := s.allow(d.Identity, stripFor(r, d)).GetOkResponse()
	wh := w.Header()
	for _, o := range ok.GetHeaders() {
		wh.Set(o.GetHeader().GetKey(), o.GetHeader().GetValue())
	}
	if envoy {
		remove := ok.GetHeadersToRemove()
		if r.HasCookieKey {
			if rest := withoutCookie(h.cookie, r.Policy.CookieKey); rest != "" {
				wh.Set("Cookie", rest) // Envoy sets it when allowed_upstream_headers has cookie
			} else {
				remove = append(remove[:len(remove):len(remove)], "cookie")
			}
		}
		wh.Set(HeaderHeadersToRemove, strings.Join(remove, ","))
	}
	w.WriteHeader(http.StatusOK)
}

// writeError answers a check request keygate cannot decide, with a JSON
// body shaped like a deny's.
func (s *Server) writeError(w http.ResponseWriter, status int, code, detail string, bodyHeader bool) {
	b, _ := json.Marshal(struct {
		Detail string `json:"detail"`
		Code   string `json:"code"`
	}{clip(detail), code})
	wh := w.Header()
	wh.Set("Content-Type", "application/json")
	if bodyHeader {
		wh.Set(HeaderBody, string(b))
	}
	w.WriteHeader(status)
	w.Write(b)
}

// httpCheckError maps a checker error to the HTTP answer: 503 when keygate
// cannot decide for now (store not loaded, check cancelled or out of
// time), else 500.
func httpCheckError(err error) (status int, code, detail string) {
	switch {
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "unavailable", "keygate: check cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable", "keygate: check deadline exceeded"
	case credentials.ErrorCode(err) == credentials.EUnavailable:
		return http.StatusServiceUnavailable, "unavailable", "keygate: " + credentials.ErrorMessage(err)
	}
	return http.StatusInternalServerError, "internal", "keygate: internal error"
}

// readHTTP fills the credential fields of h from the header of an HTTP
// check request, joining repeated fields as Envoy does.
func (h *headers) readHTTP(hdr http.Header) {
	h.authorization, h.hasAuthorization = joined(hdr, "Authorization", ",")
	h.apiKey, h.hasAPIKey = joined(hdr, "X-Api-Key", ",")
	h.cookie, h.hasCookie = joined(hdr, "Cookie", "; ")
	h.requestID, _ = joined(hdr, "X-Request-Id", ",")
	h.forwardedFor, _ = joined(hdr, "X-Forwarded-For", ",")
	h.signature = len(hdr["Signature"]) > 0 || len(hdr["Signature-Input"]) > 0 || len(hdr["X-Signature"]) > 0
}

// original fills the method, path and authority of h with the original
// request's and returns how the check request named it and the original
// scheme ("" when unknown).
func (h *headers) original(r *http.Request, rest string) (mode httpMode, scheme string, err error) {
	hdr := r.Header
	if rest != "" && rest[0] == '/' {
		h.method, h.path, h.authority = r.Method, rest, r.Host
		scheme, err = single(hdr, "X-Forwarded-Proto")
		return modeEnvoy, strings.ToLower(scheme), err
	}
	oURI, oMethod := hdr.Values("X-Original-Uri"), hdr.Values("X-Original-Method")
	fURI, fMethod := hdr.Values("X-Forwarded-Uri"), hdr.Values("X-Forwarded-Method")
	original := len(oURI) > 0 || len(oMethod) > 0
	forwarded := len(fURI) > 0 || len(fMethod) > 0
	switch {
	case original && forwarded:
		return 0, "", errors.New("both X-Original-* and X-Forwarded-Uri/-Method name the original request")
	case original:
		mode = modeOriginal
		if h.path, err = single(hdr, "X-Original-Uri"); err != nil {
			return mode, "", err
		}
		if h.method, err = single(hdr, "X-Original-Method"); err != nil {
			return mode, "", err
		}
		h.authority = r.Host
	case forwarded:
		mode = modeForwarded
		if h.path, err = single(hdr, "X-Forwarded-Uri"); err != nil {
			return mode, "", err
		}
		if h.method, err = single(hdr, "X-Forwarded-Method"); err != nil {
			return mode, "", err
		}
		if h.authority, err = single(hdr, "X-Forwarded-Host"); err != nil {
			return mode, "", err
		}
		if h.authority == "" {
			h.authority = r.Host
		}
	default:
		return 0, "", errors.New("no X-Original-URI or X-Forwarded-Uri names the original request")
	}
	if h.path == "" || h.path[0] != '/' {
		return mode, "", errors.New("the original request target is not a path") // its value may hold a key: never logged
	}
	scheme, err = single(hdr, "X-Forwarded-Proto")
	return mode, strings.ToLower(scheme), err
}

// httpPolicy returns def overridden by the X-Keygate-* settings of hdr.
func httpPolicy(hdr http.Header, def credentials.Policy) (credentials.Policy, error) {
	var ext map[string]string
	for name, vals := range hdr {
		if len(name) < 10 || !strings.EqualFold(name[:10], "X-Keygate-") {
			continue
		}
		key, ok := settingHeaders[textproto.CanonicalMIMEHeaderKey(name)]
		switch {
		case !ok:
			return def, fmt.Errorf("unknown route setting header %s", clip(name))
		case len(vals) > 1:
			return def, fmt.Errorf("%s given %d times", name, len(vals))
		case vals[0] == "":
			continue
		}
		if ext == nil {
			ext = make(map[string]string, len(settingHeaders))
		}
		ext[key] = vals[0]
	}
	if ext == nil {
		return def, nil
	}
	return credentials.ParsePolicy(ext, def)
}

// httpSourceIP returns the source address of an HTTP check: X-Real-IP
// from a trusted peer, else (with TrustedHops) X-Forwarded-For from a
// trusted peer, else the zero Addr (unknown: allowlists fail closed).
func (s *Server) httpSourceIP(r *http.Request, h *headers) netip.Addr {
	peer, ok := parseIP(r.RemoteAddr)
	if !ok || !s.trustedPeer(peer) {
		return netip.Addr{}
	}
	if v := r.Header.Values("X-Real-Ip"); len(v) > 0 {
		if len(v) > 1 {
			return netip.Addr{}
		}
		a, _ := parseIP(trimOWS(v[0]))
		return a
	}
	if s.hops > 0 {
		a, _ := forwardedFor(h.forwardedFor, s.hops)
		return a
	}
	return netip.Addr{}
}

func (s *Server) trustedPeer(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// joined returns the values of the header name (canonical form) joined by
// sep, and whether it is present.
func joined(hdr http.Header, name, sep string) (string, bool) {
	v := hdr[name]
	switch len(v) {
	case 0:
		return "", false
	case 1:
		return v[0], true
	}
	return strings.Join(v, sep), true
}

// single returns the one value of the header name ("" when absent); a
// repeated header is an error.
func single(hdr http.Header, name string) (string, error) {
	v := hdr.Values(name)
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", fmt.Errorf("%s given %d times", name, len(v))
}

// httpLookup returns the field values of hdr by lower-case name.
func httpLookup(hdr http.Header) func(name string) []string {
	return func(name string) []string { return hdr.Values(name) }
}
