package extauthz

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate/credentials"
)

// Options configure a Server.
type Options struct {
	// Default is the server's default policy; the zero value means
	// credentials.DefaultPolicy.
	Default credentials.Policy
	// Logger receives the decision log; nil means zap.NewNop().
	Logger *zap.Logger
	// TrustedHops is the number of X-Forwarded-For hops to trust for the
	// source IP: the entry that many hops from the right is the source.
	// 0 means attributes.source.address only (X-Forwarded-For is ignored).
	// In HTTP check mode it applies only to requests from TrustedProxies
	// that carry no X-Real-IP (see HTTPHandler).
	TrustedHops int
	// TrustedProxies are the peers whose X-Real-IP (and, with TrustedHops,
	// X-Forwarded-For) HTTP check mode believes; nil means loopback only.
	TrustedProxies []netip.Prefix
	// MaxRequestBytes bounds the body of an HTTP check request (Envoy's
	// http_service forwards the original body); 0 means 4 MiB.
	MaxRequestBytes int
}

// Server is the Envoy ext_authz v3 gRPC Authorization service and the
// HTTP check handler (HTTPHandler). It is safe for concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	checker *credentials.Checker
	def     credentials.Policy
	log     *zap.Logger
	hops    int
	proxies []netip.Prefix // trusted HTTP check peers
	maxBody int64

	denies     *denyResponses
	denyWire   map[*authv3.CheckResponse][]byte // read-only after NewServer
	allowCache atomic.Pointer[allowCache]

	total    *prometheus.CounterVec
	counters [nResults][len(methodNames)]prometheus.Counter
	duration prometheus.Histogram
}

// NewServer returns a Server that decides with c.
func NewServer(c *credentials.Checker, o Options) *Server {
	s := &Server{
		checker: c,
		def:     o.Default,
		log:     o.Logger,
		hops:    o.TrustedHops,
		proxies: o.TrustedProxies,
		maxBody: int64(o.MaxRequestBytes),
		denies:  newDenyResponses(),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_check_total",
			Help: "Checks answered, by result code (ok, a deny code, or error) and credential method.",
		}, []string{"code", "method"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keygate_check_duration_seconds",
			Help:    "Time to answer a Check, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.000025, 2, 16),
		}),
	}
	s.denyWire = make(map[*authv3.CheckResponse][]byte)
	for i := range s.denies {
		for _, r := range s.denies[i] {
			if b := encode(r); r != nil && b != nil {
				s.denyWire[r] = b
			}
		}
	}
	if s.def == (credentials.Policy{}) {
		s.def = credentials.DefaultPolicy
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.proxies == nil {
		s.proxies = loopback
	}
	if s.maxBody <= 0 {
		s.maxBody = 4 << 20
	}
	for i := 0; i < nResults; i++ {
		code := resultOK
		switch {
		case i < len(denyTable):
			code = string(denyTable[i].Code)
		case i == idxError:
			code = resultError
		}
		for m, name := range methodNames {
			s.counters[i][m] = s.total.WithLabelValues(code, name)
		}
	}
	return s
}

// Register registers s as envoy.service.auth.v3.Authorization on g.
func (s *Server) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// Collectors returns the server's metrics: keygate_check_total{code,method}
// and keygate_check_duration_seconds.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.total, s.duration}
}

// Check decides req. An allow or a deny is a CheckResponse with a nil
// error; an error (codes.Internal for bad route settings, Unavailable when
// the store is not loaded, Canceled or DeadlineExceeded when ctx is done)
// is returned only when keygate cannot decide. The response may be shared
// between calls and must not be modified.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	attrs := req.GetAttributes()
	var h headers
	h.read(attrs.GetRequest().GetHttp())

	pol, err := credentials.ParsePolicy(attrs.GetContextExtensions(), s.def)
	if err != nil {
		s.fail(&h, start, "invalid route settings", err)
		return nil, status.Error(codes.Internal, "keygate: invalid route settings: "+err.Error())
	}
	r := credentials.Request{Policy: pol, SourceIP: s.sourceIP(attrs, &h)}
	if h.signature {
		r.Signed = signedRequest(attrs.GetRequest().GetHttp(), &h)
	}
	d, i, err := s.decide(ctx, start, &h, &r, false)
	switch {
	case errors.Is(err, errUnknownDecision):
		return nil, status.Error(codes.Internal, "keygate: unknown decision")
	case err != nil:
		return nil, checkError(err)
	case i == idxOK:
		resp := s.allow(d.Identity, stripFor(&r, &d))
		if r.HasCookieKey {
			resp = withCookie(resp, withoutCookie(h.cookie, pol.CookieKey))
		}
		return resp, nil
	}
	return s.deny(i, &d), nil
}

// errUnknownDecision is decide's error for a deny code that denyTable does
// not know (never an allow).
var errUnknownDecision = errors.New("unknown decision")

// decide is the decision both transports share. h holds the request's
// headers as Envoy would send them; r holds the route's policy, the source
// address and, for signed requests, what the signature covers. decide
// fills r's credential fields from h, asks the checker, counts and logs
// the outcome, and returns the decision with its row: idxOK for an allow,
// else the index of its code in denyTable. A non-nil error (already
// counted and logged) means keygate cannot decide: the checker's error,
// or errUnknownDecision. strictQueryName refuses a percent-encoded
// api_key parameter name (proxies that strip the parameter by its literal
// name would let such a key through to the upstream).
func (s *Server) decide(ctx context.Context, start time.Time, h *headers, r *credentials.Request, strictQueryName bool) (credentials.Decision, int, error) {
	pol := &r.Policy
	r.Authorization, r.HasAuthorization = h.authorization, h.hasAuthorization
	r.APIKey, r.HasAPIKey = h.apiKey, h.hasAPIKey
	r.Signature = h.signature
	var local credentials.Decision // a deny decided here, before the checker
	if pol.QueryKey {
		v, n, bad := queryParam(h.path, QueryKeyParam)
		switch {
		case n > 1:
			local = credentials.Decision{Code: credentials.AmbiguousCredentials, Reason: "api_key query parameter repeated", Source: credentials.FromQuery}
		case bad:
			local = credentials.Decision{Code: credentials.InvalidAPIKey, Reason: "api_key query parameter is not valid percent-encoding", Source: credentials.FromQuery, Method: credentials.MethodAPIKey}
		case n == 1 && strictQueryName && !literalParam(h.path, QueryKeyParam):
			local = credentials.Decision{Code: credentials.InvalidAPIKey, Reason: "api_key query parameter name is percent-encoded", Source: credentials.FromQuery, Method: credentials.MethodAPIKey}
		case n == 1:
			r.QueryKey, r.HasQueryKey = v, true
		}
	}
	if pol.CookieKey != "" && h.hasCookie && local.Code == credentials.Allow {
		v, n := cookieValue(h.cookie, pol.CookieKey)
		switch {
		case n > 1:
			local = credentials.Decision{Code: credentials.AmbiguousCredentials, Reason: "cookie " + pol.CookieKey + " repeated", Source: credentials.FromCookie}
		case n == 1:
			r.CookieKey, r.HasCookieKey = v, true
		}
	}

	var d credentials.Decision
	if local.Code != credentials.Allow {
		local.Accepted = pol.Methods
		d = local
	} else {
		var err error
		if d, err = s.checker.Check(ctx, r); err != nil {
			s.fail(h, start, "cannot decide", err)
			return d, -1, err
		}
	}
	if d.Code == credentials.Allow {
		s.record(idxOK, &d, start, h, r)
		return d, idxOK, nil
	}
	i := denyIndex(d.Code)
	if i < 0 { // a code this table does not know: never allow
		s.fail(h, start, "unknown deny code "+string(d.Code), nil)
		return d, -1, errUnknownDecision
	}
	s.record(i, &d, start, h, r)
	return d, i, nil
}

// stripFor returns the credential carriers an allow removes: every keygate
// credential the request presented (one, or the same key twice), except an
// Authorization JWT on a route that keeps it.
func stripFor(r *credentials.Request, d *credentials.Decision) uint8 {
	var strip uint8
	if r.HasAPIKey {
		strip |= stripAPIKey
	}
	if r.HasAuthorization && keygateAuthorization(r.Authorization) &&
		!(d.Method == credentials.MethodJWT && r.Policy.KeepJWT) {
		strip |= stripAuthorization
	}
	if r.HasQueryKey {
		strip |= stripQueryParam
	}
	if r.Signature {
		strip |= stripSignature
	}
	return strip
}

// sourceIP returns the source address of the request: the peer Envoy saw,
// or with TrustedHops the X-Forwarded-For entry that many hops from the
// right (the zero Addr when there is no such entry, so allowlists fail
// closed).
func (s *Server) sourceIP(attrs *authv3.AttributeContext, h *headers) (a netip.Addr) {
	if s.hops > 0 {
		a, _ = forwardedFor(h.forwardedFor, s.hops)
		return a
	}
	a, _ = parseIP(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress())
	return a
}

// checkError maps a checker error to the gRPC error Envoy sees.
func checkError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "keygate: check cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "keygate: check deadline exceeded")
	case credentials.ErrorCode(err) == credentials.EUnavailable:
		return status.Error(codes.Unavailable, "keygate: "+credentials.ErrorMessage(err))
	}
	return status.Error(codes.Internal, "keygate: internal error")
}

// record counts and logs a decision: denies at Info, allows at Debug.
func (s *Server) record(i int, d *credentials.Decision, start time.Time, h *headers, r *credentials.Request) {
	took := time.Since(start)
	m := methodIndex(d.Method)
	s.counters[i][m].Inc()
	s.duration.Observe(took.Seconds())
	lvl, msg := zapcore.InfoLevel, "check denied"
	if i == idxOK {
		lvl, msg = zapcore.DebugLevel, "check allowed"
	}
	ce := s.log.Check(lvl, msg)
	if ce == nil {
		return
	}
	code := resultOK
	if i < len(denyTable) {
		code = string(denyTable[i].Code)
	}
	var tenant, client, keyID string
	if d.Identity != nil {
		tenant, client, keyID = d.Identity.TenantID, d.Identity.ClientID, d.Identity.KeyID
	}
	fields := []zap.Field{
		zap.String("request_id", clip(h.requestID)),
		zap.String("method", clip(h.method)),
		zap.String("path", clip(stripQuery(h.path))),
		zap.String("authority", clip(h.authority)),
		zap.String("source_ip", addrString(r.SourceIP)),
		zap.String("code", code),
		zap.String("reason", d.Reason),
		zap.String("tenant", tenant),
		zap.String("client", client),
		zap.String("key_id", keyID),
		zap.String("auth_method", methodNames[m]),
		zap.Duration("latency", took),
	}
	if d.Issuer != "" {
		fields = append(fields, zap.String("issuer", d.Issuer))
	}
	if d.SignatureBase != "" && s.log.Core().Enabled(zapcore.DebugLevel) {
		// What keygate signed, for client authors comparing their own
		// base (debug only; covered secrets are masked).
		fields = append(fields, zap.String("signature_base", redactBase(d.SignatureBase)))
	}
	if d.Code == credentials.RateLimited {
		fields = append(fields, zap.Duration("retry_after", d.RetryAfter))
	}
	ce.Write(fields...)
}

// fail counts and logs a Check that ends in a gRPC error.
func (s *Server) fail(h *headers, start time.Time, msg string, err error) {
	took := time.Since(start)
	s.counters[idxError][0].Inc()
	s.duration.Observe(took.Seconds())
	lvl := zapcore.ErrorLevel
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errBodyTooLarge) {
		lvl = zapcore.InfoLevel
	}
	if ce := s.log.Check(lvl, "check failed: "+msg); ce != nil {
		ce.Write(
			zap.String("request_id", clip(h.requestID)),
			zap.String("method", clip(h.method)),
			zap.String("path", clip(stripQuery(h.path))),
			zap.String("authority", clip(h.authority)),
			zap.Error(err),
			zap.Duration("latency", took),
		)
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// maxLogValue bounds client-supplied strings in the decision log.
const maxLogValue = 256

// clip shortens a client-supplied value for the log.
func clip(s string) string {
	if len(s) > maxLogValue {
		return s[:maxLogValue] + "…"
	}
	return s
}
