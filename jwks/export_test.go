package jwks

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"
)

// SetMinBackoff sets the first retry delay of Run (1s otherwise).
func SetMinBackoff(f *Fetcher, d time.Duration) { f.minBackoff = d }

// SetTLSConfig sets the TLS configuration of the Fetcher's own client.
func SetTLSConfig(f *Fetcher, c *tls.Config) {
	f.client.Transport.(*http.Transport).TLSClientConfig = c
}

// WaitStatus waits until cond holds for the status of f (checked after
// every change) or ctx is done.
func WaitStatus(ctx context.Context, f *Fetcher, cond func(map[string]URIStatus) bool) error {
	return f.waitUntil(ctx, func() bool { return cond(f.statusAllLocked()) })
}
