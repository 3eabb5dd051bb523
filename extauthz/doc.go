// Package extauthz is Envoy's side of keygate: the ext_authz v3 gRPC
// Authorization service and HTTP check mode (Server.HTTPHandler: nginx
// auth_request, Caddy/Traefik forward auth, Envoy http_service). It maps a
// CheckRequest (or an HTTP check request) to a credentials.Request, asks a
// credentials.Checker, and maps the Decision to a CheckResponse (or an
// HTTP answer). Both transports share one decision function (decide), so
// they decide, count and log alike; HTTP answers are built from the gRPC
// responses, so deny bodies are the same bytes.
//
// Rules of the package:
//   - A deny is a normal CheckResponse with a nil error. A gRPC error is
//     returned only when keygate cannot decide (bad route settings, store
//     not loaded, cancelled or expired context), so that Envoy's
//     failure_mode_allow / status_on_error is the one switch for outages.
//     Nothing here ever turns an error into an allow.
//   - One table (denyTable) maps a deny code to its HTTP status, the gRPC
//     code of CheckResponse.status and the caller-facing detail; deny
//     bodies are exactly {"detail":"...","code":"..."}.
//   - An allow overwrites (never appends) the identity headers it sets and
//     removes the ones it does not set, so a client-supplied copy never
//     reaches the upstream; it also removes the credential it consumed.
//   - In HTTP check mode, route settings come from X-Keygate-* request
//     headers that the proxy must set or clear, and the source address
//     from X-Real-IP only when the peer is a trusted proxy; nothing there
//     is ever turned into an allow that gRPC would not give.
//   - Headers are read as Envoy sends them: header_map wins over headers,
//     repeated names are joined with "," (cookies with "; "), so
//     "x-api-key: k1,k2" is one malformed key. X-Forwarded-For is ignored
//     unless Options.TrustedHops says how many hops to trust.
//   - Never log the value of authorization, cookie, x-api-key, the
//     signature headers, the query string or any key: the decision log
//     names the request by ID, method, path without query and authority.
//   - The hot path takes no lock and decodes nothing it does not need.
//     Responses are built once and shared (cached per
//     *credentials.Identity, which is immutable per index), so a returned
//     CheckResponse must never be modified.
package extauthz
