package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/keygate/keygate/credentials"
)

// Bucket names and meta keys.
var (
	bucketMeta    = []byte("meta")
	bucketTenants = []byte("tenants")
	bucketClients = []byte("clients")
	bucketAPIKeys = []byte("apikeys")
	bucketSums    = []byte("sums")
	bucketUsage   = []byte("usage")
	bucketAudit   = []byte("audit")
	// Buckets added to format version 1 later: a store file without them
	// holds none of their records; the first Apply that writes one creates
	// the bucket.
	bucketIssuers     = []byte("issuers")
	bucketRevocations = []byte("revocations")
	bucketHMACKeys    = []byte("hmackeys")

	// v1Buckets are in every store file of format version 1.
	v1Buckets  = [][]byte{bucketMeta, bucketTenants, bucketClients, bucketAPIKeys, bucketSums, bucketUsage, bucketAudit}
	allBuckets = append(slices.Clip(v1Buckets), bucketIssuers, bucketRevocations, bucketHMACKeys)

	metaFormat   = []byte("format")
	metaVersion  = []byte("version")
	metaRevision = []byte("revision")
	metaUpdated  = []byte("updated")
	// metaKeyCheck is HMAC-SHA256(master key, "keygate master key check
	// v1"), written with the first sealed secret.
	metaKeyCheck = []byte("master_key_check")
)

const (
	formatMarker  = "keygate"
	formatVersion = "1"
	// defaultLockTimeout is how long Open waits for another process's file
	// lock when Options leaves LockTimeout 0.
	defaultLockTimeout = time.Second
	// defaultFlushInterval is the last-used flush period when Options
	// leaves it 0.
	defaultFlushInterval = 10 * time.Second
)

// Options configure a Store.
type Options struct {
	// Logger receives one line per committed change; nil means zap.NewNop().
	Logger *zap.Logger
	// FlushInterval is the period of the background last-used flush:
	// 0 means 10s, a negative value means no background flusher (usage is
	// then written by FlushUsage and Close only).
	FlushInterval time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// LockTimeout is how long Open waits while another process holds the
	// file (e.g. the old pod of a rolling update); 0 means 1s.
	LockTimeout time.Duration
	// MasterKey is the AES-256 key (MasterKeySize bytes) that encrypts
	// recoverable secrets at rest (the secrets of issuers' oct keys and of
	// HMAC keys). nil means no master key: Open then refuses a store that
	// holds encrypted secrets, and Apply refuses to store a secret.
	MasterKey []byte
}

// Store is a credentials.Store on a bbolt file. Open it with Open and
// release it with Close. It is safe for concurrent use.
type Store struct {
	path string
	db   *bbolt.DB
	log  *zap.Logger
	now  func() time.Time
	seal *sealer // nil: no master key

	mu     sync.Mutex // serializes writers (Apply, FlushUsage, Close)
	closed bool
	cur    atomic.Pointer[state]

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

var _ credentials.Store = (*Store)(nil)

// state is one immutable revision of the store's records. Maps are never
// modified once the state is published; Apply clones the ones it changes.
type state struct {
	rev     uint64
	updated time.Time
	tenants map[string]*credentials.Tenant
	clients map[string]*credentials.Client
	issuers map[string]*storedIssuer // by "tenant/name"
	// hmacKeys are few: kept decoded, with their secrets.
	hmacKeys map[string]*storedHMACKey // by ID
	idx      *credentials.Index
}

// Open opens the store at path, creating the parent directory (0700) and
// the file (0600) if missing, and loads it into memory. It returns an
// error naming the file when the file is locked by another process, is not
// a keygate store, or is truncated or corrupted; it never returns an empty
// store for a file it cannot read. When the store holds encrypted secrets,
// Open fails (wrapping ErrMasterKeyRequired or ErrWrongMasterKey) unless
// o.MasterKey is the key they were encrypted with; a secret that does not
// decrypt is an error naming its issuer or HMAC key.
func Open(path string, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = defaultFlushInterval
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = defaultLockTimeout
	}
	seal, err := newSealer(o.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("keygate: store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keygate: store %s: create directory: %w", path, err)
	}
	fresh := false
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fresh = true
	case err != nil:
		return nil, fmt.Errorf("keygate: store %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("keygate: store %s is a directory", path)
	case fi.Size() == 0:
		fresh = true
	}

	db, err := openBolt(path, o.LockTimeout)
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("keygate: store %s is locked by another process (waited %s)", path, o.LockTimeout)
		case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("keygate: store %s: %w", path, err)
		}
		return nil, corrupted(path, err)
	}
	s := &Store{path: path, db: db, log: o.Logger, now: o.Now, seal: seal, stop: make(chan struct{})}
	st, err := s.load(fresh)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.cur.Store(st)
	if fi, err := os.Stat(path); err == nil {
		releaseMapping(db, fi.Size()) // no writer yet: the mapping is the one load read
	}
	if o.FlushInterval > 0 {
		s.done.Add(1)
		go s.flushLoop(o.FlushInterval)
	}
	return s, nil
}

func corrupted(path string, err error) error {
	return fmt.Errorf("keygate: store %s is corrupted or not a keygate store: %w", path, err)
}

// openBolt opens the bbolt file, turning a panic on corrupt pages into an
// error (the file descriptor of a panicking open cannot be released).
func openBolt(path string, lockTimeout time.Duration) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("bbolt panicked: %v", r)
		}
	}()
	return bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, FreelistType: bbolt.FreelistMapType})
}

// Close writes pending last-used times, stops the background flusher and
// closes the file. Calling it again does nothing.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.done.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	ferr := s.flushLocked()
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("keygate: close store %s: %w", s.path, err)
	}
	return ferr
}

// Index returns the index of the current revision. It never blocks.
func (s *Store) Index() *credentials.Index {
	if st := s.cur.Load(); st != nil {
		return st.idx
	}
	return nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// load reads the whole file into a new state. fresh files (and bbolt files
// without any bucket) get keygate's buckets and revision 0.
func (s *Store) load(fresh bool) (st *state, err error) {
	if fresh {
		if err := s.initialize(); err != nil {
			return nil, err
		}
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, corrupted(s.path, fmt.Errorf("bbolt panicked: %v", r))
		}
	}()
	var empty bool
	err = s.db.View(func(tx *bbolt.Tx) error {
		if fi, err := os.Stat(s.path); err == nil && fi.Size() < tx.Size() {
			return fmt.Errorf("file is truncated: %d bytes, the database needs %d", fi.Size(), tx.Size())
		}
		if tx.Bucket(bucketMeta) == nil {
			n := 0
			tx.ForEach(func([]byte, *bbolt.Bucket) error { n++; return nil })
			empty = n == 0
			if !empty {
				return errors.New("no keygate meta bucket")
			}
			return nil
		}
		var err error
		st, err = readState(tx, s.seal, s.now().UTC())
		return err
	})
	switch {
	case errors.Is(err, ErrMasterKeyRequired):
		return nil, fmt.Errorf("keygate: store %s holds encrypted secrets: %w", s.path, ErrMasterKeyRequired)
	case errors.Is(err, ErrWrongMasterKey):
		return nil, fmt.Errorf("keygate: store %s: %w", s.path, ErrWrongMasterKey)
	case err != nil:
		return nil, corrupted(s.path, err)
	}
	if empty && !fresh {
		// A bbolt file with no bucket at all holds no data (for example a
		// first Open that crashed before its first commit): initialize it.
		return s.load(true)
	}
	if empty {
		return nil, corrupted(s.path, errors.New("meta bucket missing after initialization"))
	}
	return st, nil
}

func (s *Store) initialize() error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta) != nil {
			return nil
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if err := m.Put(metaFormat, []byte(formatMarker)); err != nil {
			return err
		}
		if err := m.Put(metaVersion, []byte(formatVersion)); err != nil {
			return err
		}
		return m.Put(metaRevision, u64(0))
	})
	if err != nil {
		return fmt.Errorf("keygate: store %s: initialize: %w", s.path, err)
	}
	return nil
}

// readState decodes every record of tx, decrypting secrets with seal,
// and builds the index (with the revocations unexpired at now). API-key
// decoding is spread over the CPUs; every worker copies what it keeps.
// It returns ErrMasterKeyRequired or ErrWrongMasterKey, unwrapped, when
// seal cannot be used on the store's secrets.
func readState(tx *bbolt.Tx, seal *sealer, now time.Time) (*state, error) {
	m := tx.Bucket(bucketMeta)
	if f := m.Get(metaFormat); string(f) != formatMarker {
		return nil, fmt.Errorf("format marker is %q, want %q", f, formatMarker)
	}
	if v := m.Get(metaVersion); string(v) != formatVersion {
		return nil, fmt.Errorf("format version %q is not supported (this keygate reads version %s)", v, formatVersion)
	}
	for _, name := range v1Buckets {
		if tx.Bucket(name) == nil {
			return nil, fmt.Errorf("bucket %q is missing", name)
		}
	}
	if check := m.Get(metaKeyCheck); check != nil {
		switch {
		case seal == nil:
			return nil, ErrMasterKeyRequired
		case !seal.checks(check):
			return nil, ErrWrongMasterKey
		}
	}
	st := &state{}
	r := m.Get(metaRevision)
	if len(r) != 8 {
		return nil, errors.New("meta revision is not 8 bytes")
	}
	st.rev = binary.BigEndian.Uint64(r)
	if u := m.Get(metaUpdated); u != nil {
		if err := st.updated.UnmarshalText(u); err != nil {
			return nil, fmt.Errorf("meta updated: %v", err)
		}
	}

	st.tenants = make(map[string]*credentials.Tenant)
	err := tx.Bucket(bucketTenants).ForEach(func(k, v []byte) error {
		t := new(credentials.Tenant)
		if err := json.Unmarshal(v, t); err != nil {
			return fmt.Errorf("tenant %q: %v", k, err)
		}
		if t.Slug != string(k) || !credentials.ValidSlug(t.Slug) {
			return fmt.Errorf("tenant record %q has slug %q", k, t.Slug)
		}
		st.tenants[t.Slug] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.clients = make(map[string]*credentials.Client)
	err = tx.Bucket(bucketClients).ForEach(func(k, v []byte) error {
		c := new(credentials.Client)
		if err := json.Unmarshal(v, c); err != nil {
			return fmt.Errorf("client %q: %v", k, err)
		}
		if c.ID != string(k) {
			return fmt.Errorf("client record %q has ID %q", k, c.ID)
		}
		t := st.tenants[c.Tenant]
		if t == nil {
			return fmt.Errorf("client %q names tenant %q, which does not exist", c.ID, c.Tenant)
		}
		c.Tenant = t.Slug // share the string
		st.clients[c.ID] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	if st.issuers, err = readIssuers(tx, st.tenants, seal); err != nil {
		return nil, err
	}
	if st.hmacKeys, err = readHMACKeys(tx, st.clients, seal); err != nil {
		return nil, err
	}
	revs, err := readRevocations(tx, now)
	if err != nil {
		return nil, err
	}
	keys, err := readKeys(tx, st.clients)
	if err != nil {
		return nil, err
	}
	data := st.indexData()
	data.APIKeys = keys
	data.Revocations = revs

	// Merge the last use into the index data.
	var byID map[string]int
	if k, _ := tx.Bucket(bucketUsage).Cursor().First(); k != nil {
		byID = make(map[string]int, len(data.APIKeys))
		for i := range data.APIKeys {
			byID[data.APIKeys[i].ID] = i
		}
	}
	err = tx.Bucket(bucketUsage).ForEach(func(k, v []byte) error {
		i, ok := byID[string(k)]
		if !ok {
			return nil // a key deleted while its use was being flushed
		}
		var u usageRecord
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("usage of API key %q: %v", k, err)
		}
		t := u.LastUsedAt
		data.APIKeys[i].LastUsedAt, data.APIKeys[i].LastUsedIP = &t, u.LastUsedIP
		return nil
	})
	if err != nil {
		return nil, err
	}
	byID = nil
	st.idx = credentials.BuildIndex(data, nil)
	if st.idx.Len() != len(keys) {
		return nil, fmt.Errorf("%d API keys share a digest with another key", len(keys)-st.idx.Len())
	}
	// Digests: the sums bucket must map exactly the keys' digests (as
	// many entries as keys, each the digest of its key in the index).
	n := 0
	err = tx.Bucket(bucketSums).ForEach(func(sum, id []byte) error {
		n++
		if len(sum) != 32 {
			return fmt.Errorf("digest index entry for API key %q does not match the key", id)
		}
		if e := st.idx.Key((*[32]byte)(sum)); e == nil || e.Identity.KeyID != string(id) {
			return fmt.Errorf("digest index entry for API key %q does not match the key", id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n != len(keys) {
		return nil, fmt.Errorf("digest index holds %d entries for %d API keys", n, len(keys))
	}
	return st, nil
}

// readKeys decodes and checks the apikeys bucket on all CPUs. The cursor
// walks the bucket on this goroutine; workers decode batches of values
// while tx is open (json.Unmarshal copies every string it keeps).
func readKeys(tx *bbolt.Tx, clients map[string]*credentials.Client) ([]credentials.APIKey, error) {
	type kv struct{ k, v []byte }
	type batch struct {
		items []kv
		out   []credentials.APIKey
		err   error
	}
	const batchSize = 4096
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *batch, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			for b := range work {
				func() {
					defer func() {
						if r := recover(); r != nil {
							b.err = fmt.Errorf("bbolt panicked: %v", r)
						}
					}()
					b.out = make([]credentials.APIKey, len(b.items))
					for i, it := range b.items {
						k := &b.out[i]
						if err := decodeKey(it.v, k); err != nil {
							b.err = fmt.Errorf("API key %q: %v", it.k, err)
							return
						}
						if k.ID != string(it.k) {
							b.err = fmt.Errorf("API key record %q has ID %q", it.k, k.ID)
							return
						}
						if b.err = checkKey(k, clients); b.err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	var batches []*batch
	cur := &batch{}
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("bbolt panicked: %v", r)
			}
		}()
		c := tx.Bucket(bucketAPIKeys).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			cur.items = append(cur.items, kv{k, v})
			if len(cur.items) == batchSize {
				batches = append(batches, cur)
				work <- cur
				cur = &batch{}
			}
		}
		return nil
	}()
	if len(cur.items) > 0 {
		batches = append(batches, cur)
		work <- cur
	}
	close(work)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	n := 0
	for _, b := range batches {
		if b.err != nil {
			return nil, b.err
		}
		n += len(b.out)
	}
	keys := make([]credentials.APIKey, 0, n)
	for _, b := range batches {
		keys = append(keys, b.out...)
		b.items, b.out = nil, nil
	}
	return keys, nil
}

// checkKey checks a stored API-key record against the clients and makes
// it share its client's ID string.
func checkKey(k *credentials.APIKey, clients map[string]*credentials.Client) error {
	c := clients[k.ClientID]
	if c == nil {
		return fmt.Errorf("API key %q names client %q, which does not exist", k.ID, k.ClientID)
	}
	if !isDigest(k.KeySHA256) {
		return fmt.Errorf("API key %q has a malformed digest", k.ID)
	}
	if k.Key != "" || k.LastUsedAt != nil || k.LastUsedIP != "" {
		return fmt.Errorf("API key record %q holds fields that are never stored", k.ID)
	}
	k.ClientID = c.ID
	return nil
}

// isDigest reports whether s is 64 lower-case hex digits.
func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// indexData returns the tenants, clients, issuers and HMAC keys (with
// their secrets) of st as BuildIndex wants them (the API keys and revocations
// are not kept in memory).
func (st *state) indexData() credentials.IndexData {
	d := credentials.IndexData{
		Revision: st.rev,
		Tenants:  make([]credentials.Tenant, 0, len(st.tenants)),
		Clients:  make([]credentials.Client, 0, len(st.clients)),
		Issuers:  make([]credentials.Issuer, 0, len(st.issuers)),
		HMACKeys: make([]credentials.HMACKey, 0, len(st.hmacKeys)),
	}
	for _, sk := range st.hmacKeys {
		d.HMACKeys = append(d.HMACKeys, sk.rec)
	}
	for _, si := range st.issuers {
		d.Issuers = append(d.Issuers, si.rec)
	}
	for _, t := range st.tenants {
		d.Tenants = append(d.Tenants, *t)
	}
	for _, c := range st.clients {
		d.Clients = append(d.Clients, *c)
	}
	return d
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// usageRecord is the value of the usage bucket.
type usageRecord struct {
	LastUsedAt time.Time `json:"last_used_at"`
	LastUsedIP string    `json:"last_used_ip,omitempty"`
}

// checkOpen returns an unavailable error once the store is closed. The
// caller holds s.mu.
// lock takes the writer mutex for a read or write of the store: it
// refuses a done context or a closed store, and returns the unlock.
func (s *Store) lock(ctx context.Context) (unlock func(), err error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if err := s.checkOpen(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return s.mu.Unlock, nil
}

func (s *Store) checkOpen() error {
	if s.closed {
		return credentials.Errorf(credentials.EUnavailable, "credential store is closed")
	}
	return nil
}

// ctxErr turns a done context into an unavailable error.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &credentials.Error{Code: credentials.EUnavailable, Message: "request cancelled", Err: err}
	}
	return nil
}
