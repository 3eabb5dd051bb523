// Package envoy holds keygate's Envoy configurations and the tests that keep
// them honest. It has no Go code of its own besides this comment.
//
// The files:
//   - sidecar.yaml: Envoy in front of one app, keygate beside it on loopback
//     gRPC (127.0.0.1:9191); the per-route settings (context_extensions),
//     an anonymous route, a route that keeps the JWT, a public health route
//     and an HMAC route that forwards the body.
//   - sidecar-uds.yaml: the same over keygate's unix socket (--grpc-socket).
//   - front-proxy.yaml: an edge Envoy behind a cloud load balancer, several
//     upstream services, one shared keygate Deployment.
//   - http-service.yaml: the sidecar with ext_authz in HTTP mode against
//     keygate's HTTP listener (/check, :9192).
//
// Rules of the package, enforced by its tests (go test ./envoy/, make
// envoy-check):
//   - Every envoy/*.yaml, and every k8s/**/envoy*.yaml, decodes strictly
//     (unknown fields and unknown Any types are errors) into go-control-plane's
//     Bootstrap, and ValidateAll passes on it and on every typed config
//     packed in an Any inside it.
//   - Every config passes the lint of lint_test.go: keygate fails closed
//     (no failure_mode_allow, no shadow mode, no 2xx status_on_error, a
//     timeout), no partial bodies, the HTTP connection manager refuses
//     header names with underscores and normalises paths, CORS runs before
//     ext_authz and ext_authz before the router, ext_authz is switched off
//     only on exact paths, and every keygate.* route setting is one
//     credentials.ParsePolicy accepts.
//   - Each file under testdata/unsafe breaks exactly one lint rule and must
//     be refused for that reason; each under testdata/invalid must fail to
//     decode or validate.
package envoy
