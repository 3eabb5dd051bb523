// Package k8s holds keygate's Kubernetes manifests: the kustomize base (an
// application pod with Envoy and keygate as a native sidecar), the shared
// keygate Deployment, and the Istio and Envoy Gateway overlays.
//
// It is its own Go module so that the Kubernetes, Istio, Gateway API and
// Envoy Gateway types its test needs stay out of keygate's module. The test
// (k8s_test.go) builds every kustomization with kustomize's krusty, decodes
// every object strictly into its API type (an unknown field, a field of the
// wrong case or an unknown kind fails), and checks the safety properties the
// manifests promise: non-root read-only containers, probes, the admin API on
// loopback and in no Service or NetworkPolicy, secrets that exist, Envoy,
// Istio and Envoy Gateway configured to fail closed, pinned images.
package k8s
