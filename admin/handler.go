package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/keygate/keygate/credentials"
)

// DefaultMaxBody is the request body limit when Options.MaxBody is 0:
// enough for a 100,000-key snapshot.
const DefaultMaxBody = 64 << 20

// Error codes of the admin API beyond those of package credentials.
const (
	ETooLarge         = "too_large"
	EMethodNotAllowed = "method_not_allowed"
)

// statusOf maps error codes to HTTP statuses: the one table of the admin
// API. Codes not in it (and EInternal) answer 500.
var statusOf = map[string]int{
	credentials.EInvalid:         http.StatusBadRequest,
	credentials.EUnauthenticated: http.StatusUnauthorized,
	credentials.EForbidden:       http.StatusForbidden,
	credentials.ENotFound:        http.StatusNotFound,
	EMethodNotAllowed:            http.StatusMethodNotAllowed,
	credentials.EConflict:        http.StatusConflict,
	credentials.EPrecondition:    http.StatusPreconditionFailed,
	ETooLarge:                    http.StatusRequestEntityTooLarge,
	credentials.ERateLimited:     http.StatusTooManyRequests,
	credentials.EInternal:        http.StatusInternalServerError,
	credentials.EUnavailable:     http.StatusServiceUnavailable,
}

//go:embed openapi.yaml
var openAPI []byte

// Options configure a Handler.
type Options struct {
	// Token is the admin bearer token. Required: NewHandler panics if it
	// is empty.
	Token string
	// Logger receives failed authentication attempts, committed changes
	// and internal errors; nil means zap.NewNop().
	Logger *zap.Logger
	// MaxBody is the request body limit in bytes; 0 means DefaultMaxBody.
	MaxBody int64
}

// Handler serves the admin API under /v1. It is safe for concurrent use.
type Handler struct {
	store    credentials.Store
	log      *zap.Logger
	tokenSum [sha256.Size]byte
	maxBody  int64
	mux      *http.ServeMux
}

// NewHandler returns the admin API over s. It panics if o.Token is empty:
// the admin API never runs without authentication.
func NewHandler(s credentials.Store, o Options) *Handler {
	if o.Token == "" {
		panic("admin: NewHandler needs a token")
	}
	h := &Handler{
		store:    s,
		log:      o.Logger,
		tokenSum: sha256.Sum256([]byte(o.Token)),
		maxBody:  o.MaxBody,
		mux:      http.NewServeMux(),
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	for _, rt := range routes {
		handle := rt.handle
		h.mux.HandleFunc(rt.pattern(), func(w http.ResponseWriter, r *http.Request) {
			if err := handle(h, w, r); err != nil {
				h.writeError(w, r, err)
			}
		})
	}
	return h
}

// ServeHTTP authenticates r and routes it. Unauthenticated requests get
// 401 whatever their path; unknown paths 404 and known paths with another
// method 405, both with the JSON error body.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if reason := h.authenticate(r); reason != "" {
		h.log.Warn("admin authentication failed",
			zap.String("remote_addr", r.RemoteAddr),
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.String("reason", reason))
		w.Header().Set("WWW-Authenticate", `Bearer realm="keygate-admin"`)
		h.writeError(w, r, credentials.Errorf(credentials.EUnauthenticated, "a valid admin bearer token is required"))
		return
	}
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.notRouted(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authenticate returns "" when r carries the admin token, else why not.
// The presented value is only hashed, never kept or logged.
func (h *Handler) authenticate(r *http.Request) string {
	v := r.Header.Values("Authorization")
	if len(v) == 0 {
		return "missing"
	}
	if len(v) > 1 {
		return "several Authorization headers"
	}
	scheme, tok, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "not a bearer token"
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) != 1 {
		return "wrong token"
	}
	return ""
}

// notRouted answers a request no route matched: 405 with Allow when the
// path exists with other methods, else 404.
func (h *Handler) notRouted(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range routedMethods {
		probe := r.WithContext(r.Context())
		probe.Method = m
		if _, p := h.mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		h.writeError(w, r, credentials.Errorf(credentials.ENotFound, "no such path: %s", r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	h.writeError(w, r, credentials.Errorf(EMethodNotAllowed, "%s is not allowed here; allowed: %s", r.Method, strings.Join(allow, ", ")))
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error apiErrorJSON `json:"error"`
}

type apiErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError answers err with its status and the JSON error shape.
// Internal errors answer a generic message; their cause is logged.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := credentials.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		code, status = credentials.EInternal, http.StatusInternalServerError
	}
	body := apiErrorJSON{Code: code, Message: credentials.ErrorMessage(err), Field: credentials.ErrorField(err)}
	if status == http.StatusInternalServerError {
		body.Message, body.Field = "internal error", ""
		h.log.Error("admin request failed",
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	h.writeJSON(w, status, errorBody{Error: body})
}

// writeJSON answers v as JSON with status.
func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		h.log.Error("admin: encoding the answer", zap.Error(err))
		status = http.StatusInternalServerError
		buf = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)+1))
	w.WriteHeader(status)
	w.Write(append(buf, '\n'))
}

// setETag sets the ETag of revision rev.
func setETag(w http.ResponseWriter, rev uint64) {
	w.Header().Set("ETag", `"`+strconv.FormatUint(rev, 10)+`"`)
}

// readJSON reads r's body (at most h.maxBody bytes) and decodes it strictly
// into v. An empty body leaves v as it is when emptyOK is set.
func (h *Handler) readJSON(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	tooLarge := credentials.Errorf(ETooLarge, "request body larger than %d bytes", h.maxBody)
	if r.ContentLength > h.maxBody {
		return tooLarge
	}
	body := http.MaxBytesReader(w, r.Body, h.maxBody)
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge
		}
		return &credentials.Error{Code: credentials.EInvalid, Message: "could not read the request body", Err: err}
	}
	if emptyOK && len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return nil
	}
	return credentials.DecodeStrict(buf.Bytes(), v)
}

// ifMatch parses the If-Match header: `"N"`, `N`, or absent/`*` (nil).
func ifMatch(r *http.Request) (*uint64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return nil, nil
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || v[0] == '+' {
		return nil, credentials.FieldError("If-Match", `must be a revision: "N" or N`)
	}
	return &n, nil
}

// actor names the caller of r in the audit log.
func actor(r *http.Request) string { return "admin@" + r.RemoteAddr }

// apply commits ch with r's If-Match and actor, and logs the change.
func (h *Handler) apply(r *http.Request, ch *credentials.Changes) (credentials.ApplyResult, error) {
	im, err := ifMatch(r)
	if err != nil {
		return credentials.ApplyResult{}, err
	}
	opt := credentials.ApplyOptions{IfMatch: im, Actor: actor(r)}
	res, err := h.store.Apply(r.Context(), ch, opt)
	if err != nil {
		return res, err
	}
	lvl := zap.DebugLevel
	if res.Changed {
		lvl = zap.InfoLevel
	}
	h.log.Log(lvl, "admin change",
		zap.String("actor", opt.Actor),
		zap.String("route", r.Pattern),
		zap.String("path", r.URL.Path),
		zap.Uint64("revision", res.Revision),
		zap.Bool("changed", res.Changed),
		zap.Any("summary", res.Summary))
	return res, nil
}

// scrub returns err with every secret in secrets removed from its message
// and field, so submitted key material is never echoed back.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var e *credentials.Error
	if !errors.As(err, &e) {
		return err
	}
	msg, field, changed := e.Message, e.Field, false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(msg, s) {
			msg, changed = strings.ReplaceAll(msg, s, "[redacted]"), true
		}
		if strings.Contains(field, s) {
			field, changed = strings.ReplaceAll(field, s, "[redacted]"), true
		}
	}
	if !changed {
		return err
	}
	return &credentials.Error{Code: e.Code, Message: msg, Field: field, Err: errors.New("message redacted")}
}
