package jwks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/keygate/keygate/credentials"
)

// Defaults and limits of a Fetcher.
const (
	// DefaultTimeout bounds one fetch (connect, headers and body).
	DefaultTimeout = 5 * time.Second
	// DefaultMinRefreshInterval is the minimum gap between two on-demand
	// refreshes of one URI.
	DefaultMinRefreshInterval = 30 * time.Second
	// MaxURIs bounds the URIs a Fetcher tracks: Refresh of a URI it does
	// not track yet returns nil once it tracks this many.
	MaxURIs = 1000
	// MaxRedirects is how many redirects the default client follows.
	MaxRedirects = 3

	maxBackoff = 5 * time.Minute
)

// Options configure a Fetcher. The zero value is usable.
type Options struct {
	// Client fetches the documents. Nil means a client of its own with
	// Timeout, no cookie jar, at most MaxRedirects redirects and no
	// redirect from https to http.
	Client *http.Client
	// Timeout bounds one fetch; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxBytes bounds a document; a bigger body is an error (the last
	// known good set is kept). 0, or more than credentials.MaxJWKSBytes,
	// means credentials.MaxJWKSBytes.
	MaxBytes int64
	// MinRefreshInterval is the minimum gap between two on-demand
	// refreshes (Refresh) of one URI; 0 means DefaultMinRefreshInterval.
	// The background schedule of Run does not count against it.
	MinRefreshInterval time.Duration
	// Logger receives fetch failures (warn), skipped keys (warn, once per
	// change of the document) and key set changes (info). Nil means
	// zap.NewNop().
	Logger *zap.Logger
	// Now returns the current time, for the rate limit of Refresh and the
	// times of Status; nil means time.Now. Run's schedule uses real
	// timers regardless.
	Now func() time.Time
}

// Fetcher fetches JWKS documents in the background and serves the last
// known good key set of each URI. It implements credentials.KeySource.
// It is safe for concurrent use; create it with New, start Run once, and
// Close it when done.
type Fetcher struct {
	client     *http.Client
	ownClient  bool
	timeout    time.Duration
	maxBytes   int64
	minRefresh time.Duration
	log        *zap.Logger
	now        func() time.Time

	// Settings tests change (export_test.go).
	pollInterval time.Duration
	minBackoff   time.Duration

	sets atomic.Pointer[map[string]*credentials.KeySet] // immutable map: copied on write under mu
	gen  atomic.Uint64
	wake chan struct{}

	base   context.Context // cancelled by Close; parent of the fetches Refresh starts
	cancel context.CancelFunc
	bg     sync.WaitGroup // fetches Refresh started

	mu      sync.Mutex
	entries map[string]*entry
	changed chan struct{} // closed (and replaced) whenever an entry changes
	closed  bool
}

// entry is the state of one tracked URI, guarded by Fetcher.mu.
type entry struct {
	uri          string
	named        bool // named by the last index Run saw
	interval     time.Duration
	flight       *flight // the fetch in progress, or nil
	lastOnDemand time.Time
	fetches      uint64
	lastAttempt  time.Time
	lastSuccess  time.Time
	lastErr      string
	hasSet       bool
	digest       [32]byte // of the published set's keys
}

// flight is one fetch that several callers may wait for.
type flight struct {
	done chan struct{}
	err  error // set before done is closed
}

// New returns a Fetcher configured by o. It fetches nothing until Run or
// Refresh is called.
func New(o Options) *Fetcher {
	f := &Fetcher{
		client:       o.Client,
		timeout:      o.Timeout,
		maxBytes:     o.MaxBytes,
		minRefresh:   o.MinRefreshInterval,
		log:          o.Logger,
		now:          o.Now,
		pollInterval: 250 * time.Millisecond,
		minBackoff:   time.Second,
		wake:         make(chan struct{}, 1),
		entries:      map[string]*entry{},
		changed:      make(chan struct{}),
	}
	if f.timeout <= 0 {
		f.timeout = DefaultTimeout
	}
	if f.maxBytes <= 0 || f.maxBytes > credentials.MaxJWKSBytes {
		f.maxBytes = credentials.MaxJWKSBytes
	}
	if f.minRefresh <= 0 {
		f.minRefresh = DefaultMinRefreshInterval
	}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.client == nil {
		f.client, f.ownClient = newClient(f.timeout), true
	}
	empty := map[string]*credentials.KeySet{}
	f.sets.Store(&empty)
	f.base, f.cancel = context.WithCancel(context.Background())
	return f
}

func newClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport:     http.DefaultTransport.(*http.Transport).Clone(),
		Timeout:       timeout,
		CheckRedirect: checkRedirect,
	}
}

// checkRedirect follows at most MaxRedirects redirects and never one from
// https to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("stopped after %d redirects", MaxRedirects)
	}
	if req.URL.Scheme != "https" {
		for _, v := range via {
			if v.URL.Scheme == "https" {
				return errors.New("refused a redirect from https to http")
			}
		}
	}
	return nil
}

// Keys returns the last known good key set of uri, or nil when none has
// been fetched (or uri is no longer tracked). It never blocks.
func (f *Fetcher) Keys(uri string) *credentials.KeySet {
	return (*f.sets.Load())[uri]
}

// Generation is incremented whenever the key set of a URI changes or is
// dropped.
func (f *Fetcher) Generation() uint64 { return f.gen.Load() }

// Refresh fetches uri again and returns its key set afterwards (the last
// known good one if the fetch fails). If an on-demand refresh of uri
// started less than MinRefreshInterval ago, it returns the current set at
// once (a fetch that brought a URI its first keys does not count: a token
// that beat the background fetch must not hold up a rotation); if a fetch of uri is in flight, it waits for that one. It waits
// at most until ctx is done (the fetch goes on for the callers that come
// later). A URI the Fetcher does not track yet is tracked from now on
// (until Run sees an index that does not name it), unless MaxURIs are
// tracked already: then Refresh returns nil. uri must be an http or https
// URL taken from an issuer record, never from a token.
func (f *Fetcher) Refresh(ctx context.Context, uri string) *credentials.KeySet {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return f.Keys(uri)
	}
	e := f.entries[uri]
	if e == nil {
		if len(f.entries) >= MaxURIs || !fetchable(uri) {
			f.mu.Unlock()
			return nil
		}
		e = &entry{uri: uri}
		f.entries[uri] = e
		f.broadcastLocked()
	}
	fl := e.flight
	if fl == nil {
		now := f.now()
		if d := now.Sub(e.lastOnDemand); !e.lastOnDemand.IsZero() && d >= 0 && d < f.minRefresh {
			f.mu.Unlock()
			return f.Keys(uri)
		}
		e.lastOnDemand = now
		fl = &flight{done: make(chan struct{})}
		e.flight = fl
		f.bg.Add(1)
		go func() {
			defer f.bg.Done()
			f.fetch(f.base, e, fl, true)
		}()
	}
	f.mu.Unlock()
	select {
	case <-fl.done:
	case <-ctx.Done():
	}
	return f.Keys(uri)
}

func fetchable(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// firstKeysGrace is how long the on-demand fetch that brought a URI its
// first keys holds off the next on-demand fetch.
const firstKeysGrace = time.Second

// Notify wakes Run to look at the index at once rather than at its next
// poll. It never blocks.
func (f *Fetcher) Notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// schedule is Run's plan for one URI.
type schedule struct {
	interval time.Duration
	due      time.Time
	backoff  time.Duration // 0 after a success
	running  bool
}

type result struct {
	uri string
	s   *schedule
	err error
}

// Run keeps the key sets of the URIs that src's current index names
// fresh until ctx is done. It polls src.Index (and wakes on Notify); on a
// new index it fetches the URIs it did not track at once and forgets
// (drops the keys of) the URIs the index no longer names. It fetches each
// URI again every interval the index asks for it; after a failure it
// retries after 1s, doubling up to min(interval, 5m), and keeps the last
// known good set meanwhile. Run returns when ctx is done and its fetches
// have ended. Call it once.
func (f *Fetcher) Run(ctx context.Context, src credentials.IndexSource) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		if f.ownClient {
			f.client.CloseIdleConnections()
		}
	}()
	results := make(chan result)
	poll := time.NewTicker(f.pollInterval)
	defer poll.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	var cur *credentials.Index
	sched := map[string]*schedule{}
	for {
		if idx := src.Index(); idx != nil && idx != cur {
			cur = idx
			f.track(idx.JWKSURIs(), sched)
		}
		now := time.Now()
		var next time.Time
		for uri, s := range sched {
			if s.running {
				continue
			}
			if !s.due.After(now) {
				s.running = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := f.background(ctx, uri)
					select {
					case results <- result{uri, s, err}:
					case <-ctx.Done():
					}
				}()
				continue
			}
			if next.IsZero() || s.due.Before(next) {
				next = s.due
			}
		}
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-f.wake:
		case <-timer.C:
		case r := <-results:
			s := sched[r.uri]
			if s != r.s {
				continue // forgotten meanwhile
			}
			s.running = false
			now := time.Now()
			if r.err == nil {
				s.backoff = 0
				s.due = now.Add(s.interval)
				continue
			}
			if s.backoff == 0 {
				s.backoff = f.minBackoff
			} else {
				s.backoff *= 2
			}
			s.backoff = min(s.backoff, s.interval, maxBackoff)
			s.due = now.Add(s.backoff)
		}
	}
}

// track makes uris (uri → refresh interval) the URIs Run keeps fresh:
// new ones are due at once, the others forgotten.
func (f *Fetcher) track(uris map[string]time.Duration, sched map[string]*schedule) {
	for uri, iv := range uris {
		if iv <= 0 {
			uris[uri] = credentials.DefaultJWKSRefresh
		}
	}
	var dropped []string
	f.mu.Lock()
	for uri, e := range f.entries {
		if _, ok := uris[uri]; ok {
			continue
		}
		delete(f.entries, uri)
		if e.hasSet {
			f.publishLocked(uri, nil)
		}
		dropped = append(dropped, uri)
	}
	for uri, iv := range uris {
		e := f.entries[uri]
		if e == nil {
			e = &entry{uri: uri}
			f.entries[uri] = e
		}
		e.named, e.interval = true, iv
	}
	f.broadcastLocked()
	f.mu.Unlock()
	for _, uri := range dropped {
		f.log.Info("jwks uri forgotten: no issuer names it", zap.String("uri", uri))
	}

	now := time.Now()
	for uri := range sched {
		if _, ok := uris[uri]; !ok {
			delete(sched, uri)
		}
	}
	for uri, iv := range uris {
		s := sched[uri]
		if s == nil {
			sched[uri] = &schedule{interval: iv, due: now}
			continue
		}
		if iv != s.interval {
			s.interval = iv
			if s.backoff == 0 && s.due.After(now.Add(iv)) {
				s.due = now.Add(iv)
			}
		}
	}
}

var errForgotten = errors.New("uri no longer tracked")

// background fetches uri for Run, or waits for the fetch in flight.
func (f *Fetcher) background(ctx context.Context, uri string) error {
	f.mu.Lock()
	e := f.entries[uri]
	if e == nil {
		f.mu.Unlock()
		return errForgotten
	}
	fl := e.flight
	leader := fl == nil
	if leader {
		fl = &flight{done: make(chan struct{})}
		e.flight = fl
	}
	f.mu.Unlock()
	if leader {
		f.fetch(ctx, e, fl, false)
		return fl.err
	}
	select {
	case <-fl.done:
		return fl.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch runs fl: it fetches e.uri, publishes the key set if the document
// parses and differs from the published one, and closes fl.done.
func (f *Fetcher) fetch(ctx context.Context, e *entry, fl *flight, onDemand bool) {
	body, err := f.get(ctx, e.uri)
	var (
		ks      *credentials.KeySet
		skipped []string
		sum     [32]byte
	)
	if err == nil {
		ks, skipped, err = credentials.ParseJWKS(body)
		if err != nil && len(skipped) > 0 {
			err = fmt.Errorf("%w (skipped: %s)", err, strings.Join(skipped[:min(len(skipped), 3)], "; "))
		}
	}
	if err == nil {
		sum = digest(body)
	}
	now := f.now()
	f.mu.Lock()
	current := f.entries[e.uri] == e
	changed := false
	if current {
		e.fetches++
		e.lastAttempt = now
		if err != nil {
			e.lastErr = err.Error()
		} else {
			e.lastErr, e.lastSuccess = "", now
			if onDemand && !e.hasSet {
				// The first keys of a URI, fetched because a token came
				// before the background fetch: not a refresh for an
				// unknown kid, so it holds the rate limit only for
				// firstKeysGrace (callers that just missed the fetch),
				// not for MinRefreshInterval, or a key rotation soon
				// after would be refused.
				e.lastOnDemand = now.Add(min(firstKeysGrace, f.minRefresh) - f.minRefresh)
			}
			if !e.hasSet || e.digest != sum {
				e.hasSet, e.digest, changed = true, sum, true
				f.publishLocked(e.uri, ks)
			}
		}
	}
	f.mu.Unlock()
	// Log before the waiters wake, so that they see the log.
	defer func() {
		f.mu.Lock()
		e.flight = nil
		fl.err = err
		close(fl.done)
		f.broadcastLocked()
		f.mu.Unlock()
	}()

	log := f.log.With(zap.String("uri", e.uri), zap.Bool("on_demand", onDemand))
	switch {
	case !current:
	case err != nil && ctx.Err() != nil:
		log.Debug("jwks fetch cancelled", zap.Error(err))
	case err != nil:
		log.Warn("jwks fetch failed; keeping the last known good keys", zap.Error(err), zap.Strings("skipped", skipped))
	case changed:
		log.Info("jwks keys updated", zap.Strings("kids", ks.Kids()), zap.Uint64("generation", f.gen.Load()))
		if len(skipped) > 0 {
			log.Warn("jwks keys skipped", zap.Strings("skipped", skipped))
		}
	}
}

// get fetches uri and returns its body.
func (f *Fetcher) get(ctx context.Context, uri string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	req.Header.Set("User-Agent", "keygate-jwks")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d from %s", resp.StatusCode, resp.Request.URL.Redacted())
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("a JWKS of %d bytes is over the %d-byte limit", resp.ContentLength, f.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the JWKS: %w", err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, fmt.Errorf("the JWKS is over the %d-byte limit", f.maxBytes)
	}
	return body, nil
}

// digest hashes the keys of a JWKS document (which ParseJWKS accepted)
// in a canonical form: the members keygate reads, in a fixed order, so
// that reformatting a document is not a change.
func digest(body []byte) [32]byte {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return sha256.Sum256(body)
	}
	h := sha256.New()
	for _, raw := range doc.Keys {
		var j credentials.JWK
		if json.Unmarshal(raw, &j) == nil {
			if b, err := json.Marshal(&j); err == nil {
				h.Write(b)
				h.Write([]byte{0})
				continue
			}
		}
		var buf bytes.Buffer
		if json.Compact(&buf, raw) != nil {
			buf.Reset()
			buf.Write(raw)
		}
		h.Write(buf.Bytes())
		h.Write([]byte{0})
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// publishLocked replaces the key set of uri (nil drops it) and increments
// the generation. f.mu must be held.
func (f *Fetcher) publishLocked(uri string, ks *credentials.KeySet) {
	old := *f.sets.Load()
	m := make(map[string]*credentials.KeySet, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if ks == nil {
		delete(m, uri)
	} else {
		m[uri] = ks
	}
	f.sets.Store(&m)
	f.gen.Add(1)
}

// broadcastLocked wakes the waiters of WaitFetched. f.mu must be held.
func (f *Fetcher) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// URIStatus is the state of one tracked URI.
type URIStatus struct {
	// Named reports whether the last index Run saw names the URI (false
	// for a URI only Refresh asked for).
	Named    bool                 `json:"named"`
	Interval credentials.Duration `json:"interval,omitempty"`
	// Fetches counts the fetches that ended, successful or not.
	Fetches     uint64    `json:"fetches"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the error of the last fetch, "" if it succeeded.
	LastError string   `json:"last_error,omitempty"`
	Keys      int      `json:"keys"`
	Kids      []string `json:"kids,omitempty"`
}

// Status returns the state of every tracked URI, by URI.
func (f *Fetcher) Status() map[string]URIStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusAllLocked()
}

func (f *Fetcher) statusAllLocked() map[string]URIStatus {
	out := make(map[string]URIStatus, len(f.entries))
	for uri, e := range f.entries {
		out[uri] = f.statusLocked(e)
	}
	return out
}

func (f *Fetcher) statusLocked(e *entry) URIStatus {
	st := URIStatus{
		Named:       e.named,
		Interval:    credentials.Duration(e.interval),
		Fetches:     e.fetches,
		LastAttempt: e.lastAttempt,
		LastSuccess: e.lastSuccess,
		LastError:   e.lastErr,
	}
	if ks := f.Keys(e.uri); ks != nil {
		st.Keys, st.Kids = ks.Len(), ks.Kids()
	}
	return st
}

// WaitFetched waits until at least n fetches of uri have ended (see
// URIStatus.Fetches) and returns its status then. It returns ctx's error
// if ctx is done first. Serve uses it to log the initial state; tests use
// it instead of sleeping.
func (f *Fetcher) WaitFetched(ctx context.Context, uri string, n uint64) (URIStatus, error) {
	var st URIStatus
	err := f.waitUntil(ctx, func() bool {
		e := f.entries[uri]
		if e == nil || e.fetches < n {
			return false
		}
		st = f.statusLocked(e)
		return true
	})
	return st, err
}

// waitUntil waits until cond, called with f.mu held after each change,
// holds, or ctx is done.
func (f *Fetcher) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the fetches Refresh started, waits for them, and makes
// later Refresh calls return the current set without fetching. Keys keeps
// working. Stop Run by cancelling its context.
func (f *Fetcher) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.bg.Wait()
	if f.ownClient {
		f.client.CloseIdleConnections()
	}
	return nil
}
