// Package admin is keygate's admin sync API (HTTP/JSON under /v1) and the
// Go client that the keygate CLI uses to call it.
//
// Rules of the package:
//   - Every request is authenticated with the admin bearer token before it
//     is routed; the token is compared through SHA-256 digests with
//     crypto/subtle. A failed attempt is answered 401, changes nothing and
//     is logged (remote address, method, path) without the presented value.
//   - The routes are one table (routes in routes.go); the mux is built from
//     it and a test checks it against the embedded openapi.yaml both ways.
//   - Request bodies are read through http.MaxBytesReader up to
//     Options.MaxBody (413 beyond it), decoded strictly (unknown fields are
//     400 naming the field) and validated by package credentials before the
//     store sees them. Every write is one Store.Apply: all-or-nothing.
//   - Error codes of package credentials map to HTTP statuses in one table
//     (statusOf). Internal errors answer a generic message; their cause is
//     only logged.
//   - Secrets never leave: a generated API key is returned once, as "key",
//     in the answer that created it; everything else shows key_sha256 only.
//     A generated HMAC secret is returned once, as "secret", by the create
//     or rotate that generated it; otherwise HMAC secrets are input only,
//     and a PUT (or snapshot) of an HMAC key without a secret keeps the
//     stored one. The secret (k) of an issuer's oct (HS*) key is input
//     only: no answer carries it, and a PUT of an oct key without k but
//     with its kid keeps the stored secret. Plaintext keys, HMAC secrets
//     and oct secrets a caller submitted are scrubbed from error messages. Logs carry actors, IDs, revisions
//     and counts, never keys, digests, secrets or tokens.
//   - Every write answers {"revision": N, ...} with ETag "N" and honours
//     If-Match ("N" or N; 412 on mismatch).
package admin
