// Package jwks fetches the JWKS documents of JWT issuers whose keys come
// from a jwks_uri and serves the last known good key set of each URI to
// the Check path. Fetcher implements credentials.KeySource.
//
// Rules:
//
//   - Only URIs an administrator configured are fetched: those the current
//     index names (credentials.Index.JWKSURIs) and the argument of Refresh,
//     which the verifier takes from the issuer record. A token's jku, x5u or
//     any other header is never followed.
//   - Keys never touches the network and never locks: it reads an atomic
//     pointer to an immutable map. Refresh is the only call that waits, and
//     at most until its context is done.
//   - A key set is replaced only by a document that was fetched with status
//     200, fit in MaxBytes and parsed with credentials.ParseJWKS into at
//     least one usable key. Any failure (network, status, size, timeout,
//     parse) keeps the last known good set and is logged at warn with the
//     URI and the error; backoff starts at 1s and doubles up to
//     min(refresh interval, 5m).
//   - Fetches of one URI are single-flight: concurrent callers share one
//     request. On-demand refreshes (Refresh, for an unknown kid) of one URI
//     are at most one per MinRefreshInterval, so tokens with random kids
//     cannot make keygate hammer an identity provider; the background
//     schedule does not count against that limit.
//   - Generation is incremented whenever a URI's key set changes (key IDs,
//     order or key material, including keys keygate skips; not mere
//     formatting) or is dropped, so caches of verified tokens can tell that
//     keys were removed.
//   - The URIs tracked are bounded: Refresh tracks a URI the index does
//     not name only while fewer than MaxURIs are tracked; a URI the index
//     stops naming (or never named) is forgotten, its keys dropped, when
//     Run sees a new index.
//   - JWKS are public: logging URIs and kids is fine; tokens never reach
//     this package.
package jwks
