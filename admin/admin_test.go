package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/keygate/keygate/credentials/credentialstest"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keygate/keygate/bolt"
	"github.com/keygate/keygate/credentials"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "admin-token-0123456789abcdef0123456789"

// env is a running admin API over a real bolt store.
type env struct {
	t      *testing.T
	store  *bolt.Store
	srv    *httptest.Server
	client *Client
	logs   *credentialstest.LogBuffer
	dir    string
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	return newEnvWith(t, o, bolt.Options{})
}

// newEnvWith is newEnv with store options bo (its Logger and
// FlushInterval are set here).
func newEnvWith(t *testing.T, o Options, bo bolt.Options) *env {
	t.Helper()
	dir := t.TempDir()
	logs := &credentialstest.LogBuffer{}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), logs, zapcore.DebugLevel)
	log := zap.New(core)
	bo.Logger, bo.FlushInterval = log, -1
	st, err := bolt.Open(filepath.Join(dir, "keygate.db"), bo)
	if err != nil {
		t.Fatal(err)
	}
	if o.Token == "" {
		o.Token = testToken
	}
	o.Logger = log
	srv := httptest.NewServer(NewHandler(st, o))
	e := &env{t: t, store: st, srv: srv, logs: logs, dir: dir}
	e.client = NewClient(srv.URL, o.Token, srv.Client())
	t.Cleanup(func() {
		srv.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return e
}

func (e *env) ctx() context.Context { return e.t.Context() }

// raw sends a request with the admin token (or the given Authorization
// value when auth is not "-default-") and returns status, headers and body.
func (e *env) raw(method, path, auth string, body []byte, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.ctx(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth == "-default-" {
		auth = "Bearer " + testToken
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (e *env) status() credentials.Status {
	e.t.Helper()
	st, err := e.client.Status(e.ctx())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) mustTenant(slug string) {
	e.t.Helper()
	if _, _, err := e.client.PutTenant(e.ctx(), credentials.Tenant{Slug: slug, DisplayName: "Tenant " + slug}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) mustClient(id, tenant string) {
	e.t.Helper()
	if _, _, err := e.client.PutClient(e.ctx(), credentials.Client{ID: id, Tenant: tenant, Name: "client " + id, Scopes: []string{"read:*"}}); err != nil {
		e.t.Fatal(err)
	}
}

// apiErr asserts that err is an *APIError with status and code.
func apiErr(t *testing.T, err error, status int, code string) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *APIError %d %s", err, status, code)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("err = %v, want %d %s", ae, status, code)
	}
	return ae
}

// errorJSON decodes an error answer, failing unless it has the JSON error shape.
func errorJSON(t *testing.T, body []byte) apiErrorJSON {
	t.Helper()
	var eb errorBody
	if err := credentials.DecodeStrict(body, &eb); err != nil || eb.Error.Code == "" {
		t.Fatalf("not a JSON error body (%v): %s", err, body)
	}
	return eb.Error
}

func sumHex(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// djangoKey is the equivalent of Python's secrets.token_urlsafe(32).
func djangoKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func u64(v uint64) *uint64 { return &v }

// inIndex reports whether the store's current index serves the key.
func (e *env) inIndex(key string) bool {
	sum := credentials.HashKey(key)
	return e.store.Index().Key(&sum) != nil
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewHandlerNeedsToken(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewHandler with an empty token did not panic")
		}
	}()
	NewHandler(nil, Options{})
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID("cl_")
		if len(id) != 19 || !strings.HasPrefix(id, "cl_") || strings.Trim(id[3:], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("bad ID %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate ID %q", id)
		}
		seen[id] = true
	}
}
