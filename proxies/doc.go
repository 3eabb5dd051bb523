// Package proxies holds example configurations that put keygate's HTTP
// check mode (docs/http-check.md) behind reverse proxies that are not
// Envoy: nginx.conf (auth_request) and Caddyfile (forward_auth). It has no
// Go code besides its tests, which run these very files with the real
// nginx and Caddy of Debian (scripts/install-debian-packages.sh installs
// them), the real keygate binary and an app that records what reaches it,
// and send requests with curl.
//
// Rules the configurations follow (and the tests check):
//   - The proxy sets or clears every X-Keygate-* route setting and names
//     the original request itself; nothing a client sends can weaken a
//     route's policy or point keygate at another request.
//   - The app sees keygate's identity headers or none, never a client's,
//     and never the credential keygate consumed.
//   - A deny reaches the client with keygate's status and JSON body.
package proxies
