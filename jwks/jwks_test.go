package jwks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/jwks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Fetcher satisfies the interface the verifier uses.
var _ credentials.KeySource = (*jwks.Fetcher)(nil)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// ecJWK returns the public JWK of a new P-256 key.
func ecJWK(t testing.TB, kid string) map[string]any {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
		"x": b64(p[1:33]), "y": b64(p[33:])}
}

// edJWK returns the public JWK of a new Ed25519 key.
func edJWK(t testing.TB, kid string) map[string]any {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "x": b64(pub)}
}

// encJWK returns a P-256 encryption key, which keygate skips.
func encJWK(t testing.TB, kid string) map[string]any {
	k := ecJWK(t, kid)
	k["use"] = "enc"
	delete(k, "alg")
	return k
}

func doc(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// idp is a JWKS endpoint whose answer the test sets.
type idp struct {
	srv     *httptest.Server
	hits    atomic.Int64
	accept  atomic.Value  // Accept header of the last request
	started chan struct{} // one value per request received

	mu      sync.Mutex
	body    []byte
	status  int
	chunked bool          // write the body without Content-Length
	block   chan struct{} // when set, requests wait until it is closed
}

func newIDP(t *testing.T, body []byte) *idp {
	s := &idp{body: body, status: http.StatusOK, started: make(chan struct{}, 4096)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.release) // runs before Close: blocked requests end first
	return s
}

func (s *idp) url() string { return s.srv.URL + "/.well-known/jwks.json" }

func (s *idp) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.accept.Store(r.Header.Get("Accept"))
	select {
	case s.started <- struct{}{}:
	default:
	}
	s.mu.Lock()
	body, status, chunked, block := s.body, s.status, s.chunked, s.block
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	if !chunked {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	}
	w.WriteHeader(status)
	if chunked && len(body) > 1 {
		w.Write(body[:1])
		w.(http.Flusher).Flush()
		body = body[1:]
	}
	w.Write(body)
}

func (s *idp) set(body []byte) {
	s.mu.Lock()
	s.body, s.status, s.chunked = body, http.StatusOK, false
	s.mu.Unlock()
}

func (s *idp) setStatus(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

func (s *idp) setChunked(body []byte) {
	s.mu.Lock()
	s.body, s.status, s.chunked = body, http.StatusOK, true
	s.mu.Unlock()
}

// hold makes requests wait until release.
func (s *idp) hold() {
	s.mu.Lock()
	s.block = make(chan struct{})
	s.mu.Unlock()
}

func (s *idp) release() {
	s.mu.Lock()
	if s.block != nil {
		close(s.block)
		s.block = nil
	}
	s.mu.Unlock()
}

// waitStarted waits until the endpoint has received a request.
func (s *idp) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the JWKS endpoint")
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// source is an IndexSource over a swappable index.
type source struct {
	p atomic.Pointer[credentials.Index]
}

func (s *source) Index() *credentials.Index { return s.p.Load() }

// newSource returns a source whose index has one issuer per URI, with
// that refresh interval (0 = the default).
func newSource(t *testing.T, uris map[string]time.Duration) *source {
	s := &source{}
	s.set(t, uris)
	return s
}

// set publishes an index whose issuers name uris.
func (s *source) set(t *testing.T, uris map[string]time.Duration) {
	t.Helper()
	d := credentials.IndexData{Revision: 1, Tenants: []credentials.Tenant{{Slug: "acme"}}}
	if old := s.p.Load(); old != nil {
		d.Revision = old.Revision + 1
	}
	want := map[string]time.Duration{}
	for i, uri := range slices.Sorted(func(yield func(string) bool) {
		for u := range uris {
			if !yield(u) {
				return
			}
		}
	}) {
		d.Issuers = append(d.Issuers, credentials.Issuer{
			Tenant: "acme", Name: fmt.Sprintf("idp%d", i), Issuer: fmt.Sprintf("https://idp%d.example", i),
			Algorithms: []string{"ES256", "EdDSA"}, JWKSURI: uri, JWKSRefresh: credentials.Duration(uris[uri]),
		})
		want[uri] = uris[uri]
		if want[uri] == 0 {
			want[uri] = credentials.DefaultJWKSRefresh
		}
	}
	idx := credentials.BuildIndex(d, nil)
	if got := idx.JWKSURIs(); !maps(got, want) {
		t.Fatalf("BuildIndex(%d issuers).JWKSURIs() = %v, want %v", len(d.Issuers), got, want)
	}
	s.p.Store(idx)
}

func maps(a, b map[string]time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func newFetcher(t *testing.T, o jwks.Options) *jwks.Fetcher {
	f := jwks.New(o)
	t.Cleanup(func() { f.Close() })
	return f
}

// run starts f.Run until the test ends.
func run(t *testing.T, f *jwks.Fetcher, src credentials.IndexSource) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, src)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wait waits until n fetches of uri have ended.
func wait(t *testing.T, f *jwks.Fetcher, uri string, n uint64) jwks.URIStatus {
	t.Helper()
	st, err := f.WaitFetched(testCtx(t), uri, n)
	if err != nil {
		t.Fatalf("WaitFetched(%s, %d): %v (status %+v)", uri, n, err, f.Status()[uri])
	}
	return st
}

func waitStatus(t *testing.T, f *jwks.Fetcher, what string, cond func(map[string]jwks.URIStatus) bool) {
	t.Helper()
	if err := jwks.WaitStatus(testCtx(t), f, cond); err != nil {
		t.Fatalf("waiting for %s: %v (status %+v)", what, err, f.Status())
	}
}

func kids(ks *credentials.KeySet) []string {
	if ks == nil {
		return nil
	}
	return ks.Kids()
}

func wantKids(t *testing.T, what string, ks *credentials.KeySet, want ...string) {
	t.Helper()
	if got := kids(ks); !slices.Equal(got, want) {
		t.Fatalf("%s: kids %q, want %q", what, got, want)
	}
}

func TestInitialFetch(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	s2 := newIDP(t, doc(t, edJWK(t, "e1"), ecJWK(t, "e2")))
	f := newFetcher(t, jwks.Options{})
	if f.Keys(s.url()) != nil || f.Generation() != 0 || len(f.Status()) != 0 {
		t.Fatal("a new Fetcher has keys")
	}
	run(t, f, newSource(t, map[string]time.Duration{s.url(): time.Hour, s2.url(): 0}))

	st := wait(t, f, s.url(), 1)
	wantKids(t, "Keys", f.Keys(s.url()), "k1")
	if st.LastError != "" || st.Keys != 1 || !slices.Equal(st.Kids, []string{"k1"}) || !st.Named ||
		st.Interval != credentials.Duration(time.Hour) || st.LastSuccess.IsZero() || st.Fetches != 1 {
		t.Errorf("status %+v", st)
	}
	st2 := wait(t, f, s2.url(), 1)
	wantKids(t, "Keys", f.Keys(s2.url()), "e1", "e2")
	if st2.Interval != credentials.Duration(credentials.DefaultJWKSRefresh) {
		t.Errorf("interval %v, want the default %v", st2.Interval, credentials.DefaultJWKSRefresh)
	}
	if g := f.Generation(); g != 2 {
		t.Errorf("Generation %d after two first fetches, want 2", g)
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if a, _ := s.accept.Load().(string); !strings.Contains(a, "application/jwk-set+json") || !strings.Contains(a, "application/json") {
		t.Errorf("Accept %q", a)
	}
	if f.Keys("https://elsewhere.example/jwks") != nil {
		t.Error("Keys of an unknown URI is not nil")
	}
}

func TestRefreshInterval(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	f := newFetcher(t, jwks.Options{})
	run(t, f, newSource(t, map[string]time.Duration{s.url(): 5 * time.Millisecond}))
	st := wait(t, f, s.url(), 4)
	if st.LastError != "" || s.hits.Load() < 4 {
		t.Errorf("status %+v after %d requests", st, s.hits.Load())
	}
	if g := f.Generation(); g != 1 {
		t.Errorf("Generation %d after refetching the same document, want 1", g)
	}
}

func TestLastKnownGood(t *testing.T) {
	const maxBytes = 2048
	k1 := ecJWK(t, "k1")
	padded := func(n int) []byte { // a valid JWKS of k1 of n bytes
		b := doc(t, k1)
		pad := n - len(b) - len(`,"pad":""`)
		return []byte(strings.TrimSuffix(string(b), "}") + `,"pad":"` + strings.Repeat("x", pad) + `"}`)
	}
	for _, tc := range []struct {
		name    string
		breakIt func(*idp)
		wantErr string
	}{
		{"status 500", func(s *idp) { s.setStatus(500) }, "status 500"},
		{"status 201", func(s *idp) { s.setStatus(201) }, "status 201"},
		{"invalid JSON", func(s *idp) { s.set([]byte(`{"keys": [`)) }, "not a JWKS"},
		{"not a JWKS", func(s *idp) { s.set([]byte(`{"issuer": "x"}`)) }, "not a JWKS"},
		{"HTML", func(s *idp) { s.set([]byte(`<html>maintenance</html>`)) }, "not a JWKS"},
		{"no usable key", func(s *idp) { s.set(doc(t, encJWK(t, "e1"))) }, "no usable"},
		{"empty key set", func(s *idp) { s.set(doc(t)) }, "no usable"},
		{"oversized with Content-Length", func(s *idp) { s.set(padded(maxBytes + 1)) }, "limit"},
		{"oversized chunked", func(s *idp) { s.setChunked(padded(maxBytes + 1)) }, "limit"},
		{"timeout", func(s *idp) { s.hold() }, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIDP(t, padded(maxBytes)) // exactly at the limit: accepted
			core, logs := observer.New(zapcore.DebugLevel)
			clk := newClock()
			timeout := 10 * time.Second
			if tc.name == "timeout" {
				timeout = 200 * time.Millisecond
			}
			f := newFetcher(t, jwks.Options{Timeout: timeout, MaxBytes: maxBytes, Now: clk.Now, Logger: zap.New(core)})
			ctx := testCtx(t)
			good := f.Refresh(ctx, s.url())
			wantKids(t, "first Refresh", good, "k1")
			gen := f.Generation()

			tc.breakIt(s)
			clk.Advance(time.Minute)
			if got := f.Refresh(ctx, s.url()); got != good {
				t.Errorf("Refresh after a failed fetch = %q, want the last known good set", kids(got))
			}
			if f.Keys(s.url()) != good {
				t.Error("Keys changed after a failed fetch")
			}
			if g := f.Generation(); g != gen {
				t.Errorf("Generation %d → %d after a failed fetch", gen, g)
			}
			st := f.Status()[s.url()]
			t.Logf("last error: %s", st.LastError)
			if !strings.Contains(st.LastError, tc.wantErr) || st.Fetches != 2 || st.Keys != 1 || st.LastAttempt == st.LastSuccess {
				t.Errorf("status %+v, want error containing %q", st, tc.wantErr)
			}
			warn := logs.FilterMessageSnippet("fetch failed").FilterLevelExact(zapcore.WarnLevel).All()
			if len(warn) != 1 || warn[0].ContextMap()["uri"] != s.url() ||
				!strings.Contains(fmt.Sprint(warn[0].ContextMap()["error"]), tc.wantErr) {
				t.Errorf("warn logs %+v; all %+v", warn, logs.All())
			}
			s.release()
		})
	}
}

func TestRetryBackoffKeepsLastKnownGood(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	f := newFetcher(t, jwks.Options{})
	jwks.SetMinBackoff(f, time.Millisecond)
	run(t, f, newSource(t, map[string]time.Duration{s.url(): 20 * time.Millisecond}))
	wait(t, f, s.url(), 1)
	good := f.Keys(s.url())
	wantKids(t, "Keys", good, "k1")

	s.setStatus(http.StatusServiceUnavailable)
	st := wait(t, f, s.url(), 1)
	st = wait(t, f, s.url(), st.Fetches+3) // retries keep failing
	if !strings.Contains(st.LastError, "status 503") || st.Keys != 1 {
		t.Errorf("status %+v", st)
	}
	if f.Keys(s.url()) != good {
		t.Error("Keys changed while fetches fail")
	}
	s.setStatus(http.StatusOK)
	waitStatus(t, f, "a successful retry", func(m map[string]jwks.URIStatus) bool { return m[s.url()].LastError == "" })
	if f.Keys(s.url()) != good || f.Generation() != 1 {
		t.Errorf("after recovery: kids %q, Generation %d; want the same set, 1", kids(f.Keys(s.url())), f.Generation())
	}
}

func TestRefreshRateLimit(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	clk := newClock()
	f := newFetcher(t, jwks.Options{Now: clk.Now})
	ctx := testCtx(t)

	s.hold()
	var wg sync.WaitGroup
	var got [100]*credentials.KeySet
	for i := range got {
		wg.Go(func() { got[i] = f.Refresh(ctx, s.url()) })
	}
	s.waitStarted(t)
	s.release()
	wg.Wait()
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("100 concurrent Refresh calls made %d requests, want 1", n)
	}
	for i, ks := range got {
		wantKids(t, fmt.Sprintf("Refresh #%d", i), ks, "k1")
	}

	// The first keys of a URI do not use up the rate limit: the next
	// Refresh (a token with a new kid) fetches, and only then the limit
	// holds for MinRefreshInterval.
	s.set(doc(t, ecJWK(t, "k1"), ecJWK(t, "k2")))
	wantKids(t, "Refresh just after the first keys", f.Refresh(ctx, s.url()), "k1") // callers that missed the first fetch
	clk.Advance(time.Second)
	wantKids(t, "Refresh after the first keys", f.Refresh(ctx, s.url()), "k1", "k2")
	s.set(doc(t, ecJWK(t, "k1"), ecJWK(t, "k2"), ecJWK(t, "k3")))
	clk.Advance(jwks.DefaultMinRefreshInterval - time.Second)
	wantKids(t, "Refresh within the interval", f.Refresh(ctx, s.url()), "k1", "k2")
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("a Refresh within MinRefreshInterval made a request (%d in all)", n)
	}
	clk.Advance(time.Second)
	wantKids(t, "Refresh after the interval", f.Refresh(ctx, s.url()), "k1", "k2", "k3")
	if n := s.hits.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}
func TestRefreshMinRefreshIntervalOption(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	clk := newClock()
	f := newFetcher(t, jwks.Options{Now: clk.Now, MinRefreshInterval: time.Hour})
	ctx := testCtx(t)
	f.Refresh(ctx, s.url()) // the first keys
	clk.Advance(time.Second)
	f.Refresh(ctx, s.url()) // an unknown kid: counts
	clk.Advance(59 * time.Minute)
	f.Refresh(ctx, s.url())
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d requests within MinRefreshInterval, want 2", n)
	}
	clk.Advance(time.Minute)
	f.Refresh(ctx, s.url())
	if n := s.hits.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

// A Refresh while Run's fetch is in flight joins it, and does not use up
// the on-demand allowance.
func TestRefreshJoinsBackgroundFetch(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	f := newFetcher(t, jwks.Options{Now: newClock().Now})
	s.hold()
	run(t, f, newSource(t, map[string]time.Duration{s.url(): time.Hour}))
	s.waitStarted(t)

	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 50 {
		if ks := f.Refresh(done, s.url()); ks != nil {
			t.Fatalf("Refresh before the first fetch ended = %q", kids(ks))
		}
	}
	s.release()
	wait(t, f, s.url(), 1)
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("%d requests, want 1 (Refresh joins the fetch in flight)", n)
	}

	s.set(doc(t, ecJWK(t, "k1"), ecJWK(t, "k2")))
	wantKids(t, "Refresh", f.Refresh(testCtx(t), s.url()), "k1", "k2")
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d requests, want 2 (joining a background fetch is not an on-demand refresh)", n)
	}
}

func TestRotation(t *testing.T) {
	k1 := ecJWK(t, "k1")
	s := newIDP(t, doc(t, k1))
	f := newFetcher(t, jwks.Options{})
	run(t, f, newSource(t, map[string]time.Duration{s.url(): time.Hour}))
	wait(t, f, s.url(), 1)
	wantKids(t, "Keys", f.Keys(s.url()), "k1")
	gen := f.Generation()

	s.set(doc(t, k1, edJWK(t, "k2")))
	ks := f.Refresh(testCtx(t), s.url())
	wantKids(t, "Refresh after rotation", ks, "k1", "k2")
	if f.Keys(s.url()) != ks {
		t.Error("Keys does not return the refreshed set")
	}
	if g := f.Generation(); g != gen+1 {
		t.Errorf("Generation %d → %d, want +1", gen, g)
	}
	if n := s.hits.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestGenerationOnlyOnChange(t *testing.T) {
	k1, k2 := ecJWK(t, "k1"), ecJWK(t, "k2")
	s := newIDP(t, nil)
	clk := newClock()
	f := newFetcher(t, jwks.Options{Now: clk.Now})
	ctx := testCtx(t)

	// Same keys, other formatting: members reordered, whitespace, a member
	// keygate does not read.
	reformatted := fmt.Sprintf("{\n  \"keys\": [ {\"y\": %q, \"x\": %q, \"use\": \"sig\", \"alg\": \"ES256\", \"kid\": \"k1\",\n \"crv\": \"P-256\", \"kty\": \"EC\", \"x5t\": \"abc\"} ]\n}\n",
		k1["y"], k1["x"])
	k1b := ecJWK(t, "k1") // same kid, other key material

	steps := []struct {
		name string
		body []byte
		want uint64
	}{
		{"first", doc(t, k1), 1},
		{"same document", doc(t, k1), 1},
		{"reformatted", []byte(reformatted), 1},
		{"key added", doc(t, k1, k2), 2},
		{"same again", doc(t, k1, k2), 2},
		{"reordered", doc(t, k2, k1), 3},
		{"failure", nil, 3},
		{"same after a failure", doc(t, k2, k1), 3},
		{"new material under the same kid", doc(t, k2, k1b), 4},
		{"skipped key added", doc(t, k2, k1b, encJWK(t, "e")), 5},
	}
	for _, st := range steps {
		if st.body == nil {
			s.setStatus(500)
		} else {
			s.set(st.body)
		}
		clk.Advance(time.Minute)
		f.Refresh(ctx, s.url())
		if g := f.Generation(); g != st.want {
			t.Fatalf("%s: Generation %d, want %d", st.name, g, st.want)
		}
	}
}

func TestSkippedKeysLoggedOncePerChange(t *testing.T) {
	k1, enc := ecJWK(t, "k1"), encJWK(t, "e1")
	s := newIDP(t, doc(t, k1, enc))
	core, logs := observer.New(zapcore.InfoLevel)
	clk := newClock()
	f := newFetcher(t, jwks.Options{Now: clk.Now, Logger: zap.New(core)})
	ctx := testCtx(t)
	for range 3 {
		wantKids(t, "Refresh", f.Refresh(ctx, s.url()), "k1")
		clk.Advance(time.Minute)
	}
	s.set(doc(t, k1, ecJWK(t, "k2"), enc))
	for range 3 {
		wantKids(t, "Refresh", f.Refresh(ctx, s.url()), "k1", "k2")
		clk.Advance(time.Minute)
	}
	skipped := logs.FilterMessageSnippet("skipped").All()
	if len(skipped) != 2 {
		t.Fatalf("%d skipped-key logs, want 2 (one per change): %+v", len(skipped), skipped)
	}
	for _, e := range skipped {
		if e.Level != zapcore.WarnLevel || e.ContextMap()["uri"] != s.url() ||
			!strings.Contains(fmt.Sprint(e.ContextMap()["skipped"]), "e1") {
			t.Errorf("log %+v", e)
		}
	}
	if n := logs.FilterMessageSnippet("updated").Len(); n != 2 {
		t.Errorf("%d update logs, want 2", n)
	}
}

func TestRemovedURIForgotten(t *testing.T) {
	a, b, c := newIDP(t, doc(t, ecJWK(t, "a"))), newIDP(t, doc(t, ecJWK(t, "b"))), newIDP(t, doc(t, ecJWK(t, "c")))
	f := newFetcher(t, jwks.Options{})
	src := newSource(t, map[string]time.Duration{a.url(): time.Hour, b.url(): time.Hour})
	run(t, f, src)
	wait(t, f, a.url(), 1)
	wait(t, f, b.url(), 1)
	wantKids(t, "Refresh of a URI no issuer names", f.Refresh(testCtx(t), c.url()), "c")
	if st := f.Status()[c.url()]; st.Named {
		t.Errorf("status of a Refresh-only URI %+v", st)
	}
	gen := f.Generation()

	src.set(t, map[string]time.Duration{a.url(): time.Hour})
	f.Notify()
	waitStatus(t, f, "b and c forgotten", func(m map[string]jwks.URIStatus) bool {
		_, okb := m[b.url()]
		_, okc := m[c.url()]
		return !okb && !okc
	})
	if f.Keys(b.url()) != nil || f.Keys(c.url()) != nil {
		t.Error("keys of a forgotten URI are still served")
	}
	wantKids(t, "Keys of a", f.Keys(a.url()), "a")
	if g := f.Generation(); g != gen+2 {
		t.Errorf("Generation %d → %d after dropping two sets, want +2", gen, g)
	}

	src.set(t, map[string]time.Duration{a.url(): time.Hour, b.url(): time.Hour})
	f.Notify()
	wait(t, f, b.url(), 1)
	wantKids(t, "Keys of b named again", f.Keys(b.url()), "b")
	if n := b.hits.Load(); n != 2 {
		t.Errorf("%d requests to b, want 2", n)
	}
	if n := a.hits.Load(); n != 1 {
		t.Errorf("%d requests to a, want 1 (a new index does not refetch known URIs)", n)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	f := jwks.New(jwks.Options{})
	s.hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, newSource(t, map[string]time.Duration{s.url(): time.Hour}))
	}()
	s.waitStarted(t) // a fetch is in flight
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if f.Keys(s.url()) != nil {
		t.Error("a cancelled fetch published keys")
	}
	s.release()
	f.Close()
	s.srv.Close()
	goleak.VerifyNone(t)
}

func TestRunWithoutIndex(t *testing.T) {
	f := newFetcher(t, jwks.Options{})
	src := &source{} // store not loaded yet
	run(t, f, src)
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	src.set(t, map[string]time.Duration{s.url(): time.Hour})
	wait(t, f, s.url(), 1)
	wantKids(t, "Keys", f.Keys(s.url()), "k1")
}

func TestRefreshBounds(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	f := newFetcher(t, jwks.Options{})
	ctx := testCtx(t)
	for _, uri := range []string{"", "/jwks.json", "ftp://example.com/jwks", "https://", "file:///etc/passwd"} {
		if ks := f.Refresh(ctx, uri); ks != nil {
			t.Errorf("Refresh(%q) = %q", uri, kids(ks))
		}
	}
	if n := len(f.Status()); n != 0 {
		t.Fatalf("%d URIs tracked after refused Refresh calls", n)
	}
	for i := range jwks.MaxURIs {
		if ks := f.Refresh(ctx, fmt.Sprintf("%s?n=%d", s.url(), i)); ks == nil {
			t.Fatalf("Refresh of URI #%d = nil", i)
		}
	}
	if ks := f.Refresh(ctx, s.url()+"?n=extra"); ks != nil {
		t.Error("Refresh beyond MaxURIs returned keys")
	}
	if n := s.hits.Load(); n != jwks.MaxURIs {
		t.Errorf("%d requests, want %d", n, jwks.MaxURIs)
	}
	if n := len(f.Status()); n != jwks.MaxURIs {
		t.Errorf("%d URIs tracked, want %d", n, jwks.MaxURIs)
	}
}

func TestRefreshAfterClose(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	f := jwks.New(jwks.Options{})
	f.Close()
	if ks := f.Refresh(testCtx(t), s.url()); ks != nil || s.hits.Load() != 0 {
		t.Errorf("Refresh after Close = %q with %d requests", kids(ks), s.hits.Load())
	}
}

// TestRefreshCtx: a caller whose context ends stops waiting; the fetch
// goes on for the others.
func TestRefreshCtx(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	clk := newClock()
	f := newFetcher(t, jwks.Options{Now: clk.Now})
	s.hold()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *credentials.KeySet)
	go func() { got <- f.Refresh(ctx, s.url()) }()
	s.waitStarted(t)
	cancel()
	if ks := <-got; ks != nil {
		t.Errorf("Refresh with a cancelled context = %q", kids(ks))
	}
	s.release()
	wait(t, f, s.url(), 1)
	wantKids(t, "Keys", f.Keys(s.url()), "k1")
}

// redirector answers /r/N with a redirect to /r/N-1, and /r/1 with one
// to target.
func redirector(t *testing.T, target string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/r/%d", &n); err != nil || n < 1 {
			http.NotFound(w, r)
			return
		}
		to := target
		if n > 1 {
			to = fmt.Sprintf("/r/%d", n-1)
		}
		http.Redirect(w, r, to, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRedirects(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	plain := redirector(t, s.url())
	tlsDoc := doc(t, ecJWK(t, "tls"))
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			w.Write(tlsDoc)
		case "/down":
			http.Redirect(w, r, s.url(), http.StatusFound)
		default:
			http.Redirect(w, r, "/jwks", http.StatusFound)
		}
	}))
	t.Cleanup(tlsSrv.Close)

	for _, tc := range []struct {
		name    string
		uri     func() string
		wantErr string
		kid     string
	}{
		{"three redirects", func() string { return plain.URL + "/r/3" }, "", "k1"},
		{"four redirects", func() string { return plain.URL + "/r/4" }, "stopped after 3 redirects", ""},
		{"https to https", func() string { return tlsSrv.URL + "/up" }, "", "tls"},
		{"https to http", func() string { return tlsSrv.URL + "/down" }, "https to http", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFetcher(t, jwks.Options{})
			jwks.SetTLSConfig(f, tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig)
			uri := tc.uri()
			ks := f.Refresh(testCtx(t), uri)
			st := f.Status()[uri]
			if tc.wantErr == "" {
				wantKids(t, "Refresh", ks, tc.kid)
				return
			}
			if ks != nil || !strings.Contains(st.LastError, tc.wantErr) {
				t.Errorf("Refresh = %q, status %+v; want error %q", kids(ks), st, tc.wantErr)
			}
		})
	}
}

// Keys and Status race with publishing (run with -race).
func TestConcurrentReads(t *testing.T) {
	s := newIDP(t, doc(t, ecJWK(t, "k1")))
	f := newFetcher(t, jwks.Options{})
	run(t, f, newSource(t, map[string]time.Duration{s.url(): time.Millisecond}))
	docs := [][]byte{doc(t, ecJWK(t, "k1")), doc(t, ecJWK(t, "k1"), ecJWK(t, "k2"))}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if ks := f.Keys(s.url()); ks != nil && ks.Len() == 0 {
					t.Error("empty key set published")
				}
				_ = f.Generation()
			}
		})
	}
	var n uint64
	for i := range 20 {
		s.set(docs[i%2])
		n = wait(t, f, s.url(), n+1).Fetches
		_ = f.Status()
	}
	close(stop)
	wg.Wait()
	if f.Generation() < 2 {
		t.Errorf("Generation %d after alternating documents", f.Generation())
	}
}

// BenchmarkRefreshRateLimited measures Refresh for a URI refreshed
// moments ago: what each token with an unknown kid costs.
func BenchmarkRefreshRateLimited(b *testing.B) {
	body := doc(b, ecJWK(b, "k1"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer srv.Close()
	f := jwks.New(jwks.Options{MinRefreshInterval: time.Hour})
	defer f.Close()
	ctx := context.Background()
	if f.Refresh(ctx, srv.URL) == nil {
		b.Fatal("no keys")
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if f.Refresh(ctx, srv.URL) == nil {
				b.Error("no keys")
			}
		}
	})
}

func BenchmarkKeys(b *testing.B) {
	body := doc(b, ecJWK(b, "k1"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer srv.Close()
	f := jwks.New(jwks.Options{})
	defer f.Close()
	f.Refresh(context.Background(), srv.URL)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if f.Keys(srv.URL) == nil {
				b.Error("no keys")
			}
		}
	})
}

// A token that arrives before the first background fetch makes an
// on-demand fetch; that first fetch must not use up the rate limit, or a
// key rotation soon after would be refused.
func TestFirstOnDemandFetchKeepsTheRateLimit(t *testing.T) {
	k1 := ecJWK(t, "k1")
	s := newIDP(t, doc(t, k1))
	clk := newClock()
	f := newFetcher(t, jwks.Options{MinRefreshInterval: time.Hour, Now: clk.Now})
	wantKids(t, "first on-demand fetch", f.Refresh(testCtx(t), s.url()), "k1")
	clk.Advance(time.Second)
	s.set(doc(t, k1, edJWK(t, "k2")))
	wantKids(t, "refresh for a new kid after the first fetch", f.Refresh(testCtx(t), s.url()), "k1", "k2")
	f.Refresh(testCtx(t), s.url())
	if n := s.hits.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (the third Refresh is within the limit)", n)
	}
}
