// Package credentials is keygate's domain: tenants, clients, API keys, the
// read index that Check consults, per-route policy, and the decision logic.
//
// Rules of the package:
//   - Standard library (and golang-jwt) only; no I/O besides what is passed in.
//   - Records decoded from storage are immutable once they are in an Index:
//     the Index is built once per store revision, published atomically and
//     then only read, so Check takes no lock and decodes nothing.
//   - Secrets (API keys) are never kept: only their SHA-256 digest. Compare
//     secrets only through digests or hmac.Equal.
//   - An Error's Message is safe to show a caller; its Err is only logged.
package credentials
