package extauthz

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/keygate/keygate/credentials"
)

// denyInfo is one row of the deny table.
type denyInfo struct {
	Code   credentials.DenyCode
	HTTP   typev3.StatusCode
	RPC    codes.Code
	Detail string
}

// denyTable is the one place that maps a deny code to its HTTP status,
// the gRPC code of CheckResponse.status and the caller-facing detail.
var denyTable = [...]denyInfo{
	{credentials.NotAuthenticated, typev3.StatusCode_Unauthorized, codes.Unauthenticated, "Authentication credentials were not provided."},
	{credentials.AmbiguousCredentials, typev3.StatusCode_Unauthorized, codes.Unauthenticated, "More than one credential was provided."},
	{credentials.InvalidAPIKey, typev3.StatusCode_Unauthorized, codes.Unauthenticated, "Invalid API key"},
	{credentials.InvalidSignature, typev3.StatusCode_Unauthorized, codes.Unauthenticated, "Invalid request signature"},
	{credentials.TokenNotValid, typev3.StatusCode_Unauthorized, codes.Unauthenticated, "Given token not valid for any token type"},
	{credentials.InsufficientScope, typev3.StatusCode_Forbidden, codes.PermissionDenied, "You do not have permission to perform this action."},
	{credentials.IPNotAllowed, typev3.StatusCode_Forbidden, codes.PermissionDenied, "Requests from this address are not allowed."},
	{credentials.Forbidden, typev3.StatusCode_Forbidden, codes.PermissionDenied, "You do not have permission to perform this action."},
	{credentials.RateLimited, typev3.StatusCode_TooManyRequests, codes.ResourceExhausted, "Request was throttled."},
}

// Metric label values of results besides the deny codes.
const (
	resultOK    = "ok"
	resultError = "error"
	nResults    = len(denyTable) + 2 // deny codes, ok, error
	idxOK       = len(denyTable)
	idxError    = len(denyTable) + 1
)

// denyIndex returns the row of code in denyTable, or -1.
func denyIndex(code credentials.DenyCode) int {
	for i := range denyTable {
		if denyTable[i].Code == code {
			return i
		}
	}
	return -1
}

// DenyStatus returns the HTTP status, the gRPC code and the caller-facing
// detail of a deny code; ok is false for an unknown code (or Allow).
func DenyStatus(code credentials.DenyCode) (httpStatus int, rpc codes.Code, detail string, ok bool) {
	i := denyIndex(code)
	if i < 0 {
		return 0, codes.Unknown, "", false
	}
	d := &denyTable[i]
	return int(d.HTTP), d.RPC, d.Detail, true
}

// DenyBody returns the JSON body of a deny: {"detail":"...","code":"..."}.
func DenyBody(code credentials.DenyCode) string {
	i := denyIndex(code)
	if i < 0 {
		return ""
	}
	return denyBodies[i]
}

var denyBodies = func() (b [len(denyTable)]string) {
	for i, d := range denyTable {
		b[i] = `{"detail":` + strconv.Quote(d.Detail) + `,"code":` + strconv.Quote(string(d.Code)) + `}`
	}
	return b
}()

// methodIndex returns 0 for none, 1 apikey, 2 hmac, 3 jwt.
func methodIndex(m credentials.Methods) int {
	switch m {
	case credentials.MethodAPIKey:
		return 1
	case credentials.MethodHMAC:
		return 2
	case credentials.MethodJWT:
		return 3
	}
	return 0
}

var methodNames = [4]string{"none", "apikey", "hmac", "jwt"}

// challenge returns the WWW-Authenticate value for the methods in m.
func challenge(m credentials.Methods) string {
	s := ""
	add := func(c string) {
		if s != "" {
			s += ", "
		}
		s += c
	}
	if m&credentials.MethodAPIKey != 0 {
		add(`ApiKey realm="keygate"`)
	}
	if m&credentials.MethodJWT != 0 {
		add(`Bearer realm="keygate"`)
	}
	if m&credentials.MethodHMAC != 0 {
		add(`Signature realm="keygate"`)
	}
	return s
}

// challengeMethods picks the methods a 401 challenges: the one presented
// when the route accepts it, else those the route accepts, else all.
func challengeMethods(d *credentials.Decision) credentials.Methods {
	if d.Method != 0 && d.Method&d.Accepted != 0 {
		return d.Method
	}
	if d.Accepted&credentials.AllMethods != 0 {
		return d.Accepted & credentials.AllMethods
	}
	return credentials.AllMethods
}

func setHeader(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// Identity header names (SPEC §3), in the order they are set.
const (
	HeaderTenantID = "x-tenant-id"
	HeaderSubject  = "x-auth-subject"
	HeaderClientID = "x-auth-client-id"
	HeaderKeyID    = "x-auth-key-id"
	HeaderMethod   = "x-auth-method"
	HeaderScopes   = "x-auth-scopes"
)

// QueryKeyParam is the query parameter an opted-in route reads the API key from.
const QueryKeyParam = "api_key"

var (
	okStatus          = &rpcstatus.Status{Code: int32(codes.OK)}
	contentTypeJSON   = setHeader("content-type", "application/json")
	signatureHeaders  = []string{"signature", "signature-input", "x-signature", "x-timestamp"}
	queryKeyToRemove  = []string{QueryKeyParam}
	identityHeaderSet = [6]string{HeaderTenantID, HeaderSubject, HeaderClientID, HeaderKeyID, HeaderMethod, HeaderScopes}
)

// denyResponses holds the deny responses that depend only on the code and
// the challenge: [code][challenge methods].
type denyResponses [len(denyTable)][credentials.AllMethods + 1]*authv3.CheckResponse

func newDenyResponses() *denyResponses {
	var r denyResponses
	var challenges [credentials.AllMethods + 1]*corev3.HeaderValueOption
	for m := credentials.Methods(1); m <= credentials.AllMethods; m++ {
		challenges[m] = setHeader("www-authenticate", challenge(m))
	}
	for i := range denyTable {
		for m := credentials.Methods(0); m <= credentials.AllMethods; m++ {
			var ch *corev3.HeaderValueOption
			if denyTable[i].HTTP == typev3.StatusCode_Unauthorized {
				if m == 0 {
					continue // a 401 always challenges
				}
				ch = challenges[m]
			} else if m != 0 {
				continue
			}
			r[i][m] = buildDeny(i, ch, nil, denyMetadata(i, nil))
		}
	}
	return &r
}

func buildDeny(i int, challenge, retry *corev3.HeaderValueOption, md *structpb.Struct) *authv3.CheckResponse {
	d := &denyTable[i]
	hs := make([]*corev3.HeaderValueOption, 1, 3)
	hs[0] = contentTypeJSON
	if challenge != nil {
		hs = append(hs, challenge)
	}
	if retry != nil {
		hs = append(hs, retry)
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(d.RPC), Message: string(d.Code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: d.HTTP},
			Headers: hs,
			Body:    denyBodies[i],
		}},
		DynamicMetadata: md,
	}
}

func denyMetadata(i int, id *credentials.Identity) *structpb.Struct {
	f := map[string]*structpb.Value{"code": structpb.NewStringValue(string(denyTable[i].Code))}
	if id != nil {
		if id.KeyID != "" {
			f["key_id"] = structpb.NewStringValue(id.KeyID)
		}
		if id.TenantID != "" {
			f["tenant_id"] = structpb.NewStringValue(id.TenantID)
		}
	}
	return &structpb.Struct{Fields: f}
}

// deny returns the CheckResponse of the deny d. Responses without
// per-request parts are shared and must not be modified.
func (s *Server) deny(i int, d *credentials.Decision) *authv3.CheckResponse {
	var m credentials.Methods
	if denyTable[i].HTTP == typev3.StatusCode_Unauthorized {
		m = challengeMethods(d)
	}
	if d.Identity == nil && d.Code != credentials.RateLimited {
		return s.denies[i][m]
	}
	var ch, retry *corev3.HeaderValueOption
	if m != 0 {
		ch = s.denies[i][m].GetDeniedResponse().GetHeaders()[1]
	}
	if d.Code == credentials.RateLimited {
		retry = setHeader("retry-after", strconv.FormatInt(retryAfterSeconds(d.RetryAfter), 10))
	}
	return buildDeny(i, ch, retry, denyMetadata(i, d.Identity))
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// Credential carriers an allow removes before the request goes upstream.
const (
	stripAPIKey uint8 = 1 << iota
	stripAuthorization
	stripQueryParam
	stripSignature
)

// allowKey identifies a cacheable allow response: it depends only on the
// identity (immutable per index) and on which carriers to strip.
type allowKey struct {
	id    *credentials.Identity
	strip uint8
}

// allowCache caches allow responses for one index; a new index starts a
// new cache so entries of replaced indexes are dropped together.
type allowCache struct {
	idx  *credentials.Index
	m    sync.Map // allowKey → *authv3.CheckResponse
	wire sync.Map // *authv3.CheckResponse → []byte, its encoding (see codec.go)
	n    atomic.Int64
}

// maxAllowCache bounds the allow responses cached per index.
const maxAllowCache = 1 << 16

// allow returns the allow response for id (nil: anonymous) that strips
// the carriers in strip. Cached responses are shared and never modified.
func (s *Server) allow(id *credentials.Identity, strip uint8) *authv3.CheckResponse {
	idx := s.checker.Source.Index()
	c := s.allowCache.Load()
	if c == nil || c.idx != idx {
		s.allowCache.CompareAndSwap(c, &allowCache{idx: idx})
		c = s.allowCache.Load()
	}
	k := allowKey{id, strip}
	if v, ok := c.m.Load(k); ok {
		return v.(*authv3.CheckResponse)
	}
	r := buildAllow(id, strip)
	if c.n.Load() < maxAllowCache {
		if v, loaded := c.m.LoadOrStore(k, r); loaded {
			return v.(*authv3.CheckResponse)
		}
		c.n.Add(1)
		if b := encode(r); b != nil {
			c.wire.Store(r, b)
		}
	}
	return r
}

func buildAllow(id *credentials.Identity, strip uint8) *authv3.CheckResponse {
	var vals [6]string
	if id != nil {
		vals = [6]string{id.TenantID, id.Subject, id.ClientID, id.KeyID, id.Method, id.Scopes}
	}
	ok := &authv3.OkHttpResponse{}
	var md *structpb.Struct
	if id != nil {
		md = &structpb.Struct{Fields: make(map[string]*structpb.Value, 6)}
	}
	mdNames := [6]string{"tenant_id", "subject", "client_id", "key_id", "auth_method", "scopes"}
	for i, name := range identityHeaderSet {
		if vals[i] == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
			continue
		}
		ok.Headers = append(ok.Headers, setHeader(name, vals[i]))
		md.Fields[mdNames[i]] = structpb.NewStringValue(vals[i])
	}
	if strip&stripAPIKey != 0 {
		ok.HeadersToRemove = append(ok.HeadersToRemove, "x-api-key")
	}
	if strip&stripAuthorization != 0 {
		ok.HeadersToRemove = append(ok.HeadersToRemove, "authorization")
	}
	if strip&stripSignature != 0 {
		ok.HeadersToRemove = append(ok.HeadersToRemove, signatureHeaders...)
	}
	if strip&stripQueryParam != 0 {
		ok.QueryParametersToRemove = queryKeyToRemove
	}
	return &authv3.CheckResponse{
		Status:          okStatus,
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: md,
	}
}

// withCookie returns a copy of the shared allow response r that also
// replaces the Cookie header by rest, or removes it when rest is empty.
func withCookie(r *authv3.CheckResponse, rest string) *authv3.CheckResponse {
	ok := r.GetOkResponse()
	c := &authv3.OkHttpResponse{
		Headers:                 ok.Headers,
		HeadersToRemove:         ok.HeadersToRemove,
		QueryParametersToRemove: ok.QueryParametersToRemove,
	}
	if rest == "" {
		c.HeadersToRemove = append(c.HeadersToRemove[:len(c.HeadersToRemove):len(c.HeadersToRemove)], "cookie")
	} else {
		c.Headers = append(c.Headers[:len(c.Headers):len(c.Headers)], setHeader("cookie", rest))
	}
	return &authv3.CheckResponse{
		Status:          r.Status,
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: c},
		DynamicMetadata: r.DynamicMetadata,
	}
}
