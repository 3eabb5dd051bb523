package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/credentials"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupBench()
	if code == 0 && os.Getenv(helperEnv) == "" {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var ctx = context.Background()

// clock is a settable time source for Options.Now.
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

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "data", "keygate.db") }

// open opens path with no background flusher and closes it at cleanup.
func open(t testing.TB, path string, o Options) *Store {
	t.Helper()
	if o.FlushInterval == 0 {
		o.FlushInterval = -1
	}
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustApply(t testing.TB, s *Store, ch *credentials.Changes) credentials.ApplyResult {
	t.Helper()
	res, err := s.Apply(ctx, ch, credentials.ApplyOptions{Actor: "test"})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func lookup(idx *credentials.Index, secret string) *credentials.KeyEntry {
	sum := sha256.Sum256([]byte(secret))
	return idx.Key(&sum)
}

func tenant(slug string) credentials.Tenant { return credentials.Tenant{Slug: slug, DisplayName: slug} }

func client(id, tenant string) credentials.Client {
	return credentials.Client{ID: id, Tenant: tenant, Name: id, Scopes: []string{"read:*"}}
}

func apiKey(id, clientID, secret string) credentials.APIKey {
	return credentials.APIKey{ID: id, ClientID: clientID, KeySHA256: digest(secret)}
}

// genKeys returns n keys of clientID: IDs ak_<prefix><i>, secrets
// "<prefix>-<i>-secret".
func genKeys(prefix, clientID string, n int) []credentials.APIKey {
	keys := make([]credentials.APIKey, n)
	for i := range keys {
		keys[i] = apiKey(fmt.Sprintf("ak_%s%d", prefix, i), clientID, fmt.Sprintf("%s-%d-secret", prefix, i))
	}
	return keys
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := credentials.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}
