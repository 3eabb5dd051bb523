package credentials

import (
	"context"
	"io"
	"time"
)

// Store is the credential store. Implementations: bolt.Store.
//
// Writes go through Apply, which commits all-or-nothing, durably (fsynced)
// before it returns, and publishes a new Index before it returns, so the
// next Check sees the change.
type Store interface {
	IndexSource

	// Apply commits ch in one transaction. Returns invalid (with Field)
	// for records that break the model (an unknown tenant, a key digest
	// used by another key), precondition_failed when opt.IfMatch does not
	// match the current revision, not_found when a delete (or
	// RevokeTokensOf) names nothing, conflict when a tenant to delete
	// still has clients or issuers. A batch that
	// changes nothing keeps the revision (Changed is false).
	Apply(ctx context.Context, ch *Changes, opt ApplyOptions) (ApplyResult, error)

	// Tenant returns the tenant slug. Returns not_found.
	Tenant(ctx context.Context, slug string) (*Tenant, error)
	// Tenants returns all tenants ordered by slug.
	Tenants(ctx context.Context) ([]Tenant, error)
	// Client returns client id. Returns not_found.
	Client(ctx context.Context, id string) (*Client, error)
	// Clients returns the clients of tenant ("" for all), ordered by ID.
	Clients(ctx context.Context, tenant string) ([]Client, error)
	// APIKey returns key id with its last use. Returns not_found.
	APIKey(ctx context.Context, id string) (*APIKey, error)
	// APIKeys returns the keys of client ("" for all), ordered by ID.
	APIKeys(ctx context.Context, clientID string) ([]APIKey, error)
	// HMACKey returns HMAC key id without its secret. Returns not_found.
	HMACKey(ctx context.Context, id string) (*HMACKey, error)
	// HMACKeys returns the HMAC keys of client ("" for all) without
	// secrets, ordered by ID.
	HMACKeys(ctx context.Context, clientID string) ([]HMACKey, error)
	// Issuer returns issuer name of tenant, without secrets (the K of
	// its oct keys is empty). Returns not_found.
	Issuer(ctx context.Context, tenant, name string) (*Issuer, error)
	// Issuers returns the issuers of tenant ("" for all) without
	// secrets, ordered by tenant and name.
	Issuers(ctx context.Context, tenant string) ([]Issuer, error)
	// Revocations returns the revocations that have not expired, ordered
	// by jti.
	Revocations(ctx context.Context) ([]Revocation, error)
	// Export returns the whole state as a snapshot document (keys as
	// digests, issuers without secrets, unexpired revocations), suitable
	// for PUT /v1/snapshot (an oct key without k keeps its stored secret).
	Export(ctx context.Context) (*Snapshot, error)
	// Status returns the revision and record counts.
	Status(ctx context.Context) (Status, error)
	// Backup writes a consistent copy of the store to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// ApplyOptions qualify an Apply.
type ApplyOptions struct {
	// IfMatch, when non-nil, is the revision the caller expects.
	IfMatch *uint64
	// Actor names who made the change, for the audit log.
	Actor string
}

// ApplyResult is the outcome of an Apply.
type ApplyResult struct {
	Revision uint64 `json:"revision"`
	Changed  bool   `json:"changed"`
	// Summary counts what changed, by kind ("tenants", "clients",
	// "apikeys", "issuers", "revocations", "token_versions") and verb
	// ("upserted", "deleted", "added", "incremented").
	Summary map[string]map[string]int `json:"summary,omitempty"`
}

// Status is the store's revision and record counts.
type Status struct {
	Revision uint64    `json:"revision"`
	Counts   Counts    `json:"counts"`
	Active   Counts    `json:"active"`
	Updated  time.Time `json:"updated_at,omitzero"`
}

// AuditEntry is one committed admin change, as kept in the store's audit
// log. It never holds secrets.
type AuditEntry struct {
	Revision uint64                    `json:"revision"`
	Time     time.Time                 `json:"time"`
	Actor    string                    `json:"actor"`
	Summary  map[string]map[string]int `json:"summary"`
	IDs      map[string][]string       `json:"ids,omitempty"`
}

// KeySource provides the keys of issuers whose keys come from a jwks_uri
// (implemented by package jwks). Check calls it; it never blocks except
// in Refresh.
type KeySource interface {
	// Keys returns the last known good key set of uri, or nil when none
	// has been fetched yet.
	Keys(uri string) *KeySet
	// Refresh is called when a token names a kid the current set of uri
	// lacks. It fetches uri again, unless an on-demand refresh of uri ran
	// within the rate limit (then it returns the current set at once),
	// joins a fetch already in flight, and returns the set afterwards.
	// It waits at most until ctx is done.
	Refresh(ctx context.Context, uri string) *KeySet
	// Generation changes whenever a key set changes, so caches of
	// verified tokens can tell that keys were removed.
	Generation() uint64
}
