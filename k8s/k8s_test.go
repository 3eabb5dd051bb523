package k8s

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The kustomizations this directory must hold; any other one found is built
// and checked too.
var wantKustomizations = []string{"base", "shared", "overlays/istio", "overlays/envoy-gateway"}

// Test values for the secret files, which exist only on an operator's
// machine (the secrets/ folders ignore everything but their README).
var testSecrets = map[string]string{
	"admin-token": "test-admin-token-not-a-real-one\n",
	"master-key":  base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\n",
}

// Ports of keygate (SPEC §1).
const (
	grpcPort  = 9191
	httpPort  = 9192
	adminPort = 9193
)

// kinds maps apiVersion/kind to the API type its objects decode into. An
// object of any other kind fails the test: add its type here first.
var kinds = map[string]func() any{
	"v1/ConfigMap":                                     func() any { return new(corev1.ConfigMap) },
	"v1/Namespace":                                     func() any { return new(corev1.Namespace) },
	"v1/Secret":                                        func() any { return new(corev1.Secret) },
	"v1/Service":                                       func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                                func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                               func() any { return new(appsv1.Deployment) },
	"networking.k8s.io/v1/NetworkPolicy":               func() any { return new(networkingv1.NetworkPolicy) },
	"policy/v1/PodDisruptionBudget":                    func() any { return new(policyv1.PodDisruptionBudget) },
	"security.istio.io/v1/AuthorizationPolicy":         func() any { return new(securityv1.AuthorizationPolicy) },
	"gateway.networking.k8s.io/v1/HTTPRoute":           func() any { return new(gwv1.HTTPRoute) },
	"gateway.networking.k8s.io/v1beta1/ReferenceGrant": func() any { return new(gwv1beta1.ReferenceGrant) },
	"gateway.envoyproxy.io/v1alpha1/SecurityPolicy":    func() any { return new(egv1a1.SecurityPolicy) },
}

// object is one object of a kustomize build, decoded into its API type.
type object struct {
	APIVersion, Kind, Namespace, Name string
	Typed                             any
}

// build is the output of one kustomization.
type build struct {
	dir     string
	objects []*object
	// meshValues is the kustomization's istiod-values.yaml, if it has one
	// (Helm values, not a Kubernetes object).
	meshValues []byte
}

func TestKustomizations(t *testing.T) {
	dirs := kustomizations(t)
	for _, want := range wantKustomizations {
		if !slices.Contains(dirs, want) {
			t.Errorf("no kustomization in k8s/%s", want)
		}
	}
	mem := manifestFS(t, true)
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			b, err := buildDir(mem, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.objects) == 0 {
				t.Fatal("the build has no objects")
			}
			for _, o := range b.objects {
				t.Logf("%s %s %s/%s", o.APIVersion, o.Kind, o.Namespace, o.Name)
			}
			for _, p := range check(b) {
				t.Error(p)
			}
		})
	}
}

// TestSecretFilesRequired: without the operator's secret files the build
// fails (and so does `kubectl apply -k`) with an error naming the file,
// before anything reaches a cluster.
func TestSecretFilesRequired(t *testing.T) {
	mem := manifestFS(t, false)
	for _, dir := range []string{"base", "overlays/istio", "overlays/envoy-gateway"} {
		_, err := buildDir(mem, dir)
		if err == nil || !strings.Contains(err.Error(), "secrets/admin-token") {
			t.Errorf("%s without secrets/admin-token: err = %v, want one naming the file", dir, err)
		}
	}
}

// TestStrictDecoding proves the decoder refuses what the API server or the
// controller would ignore or refuse: unknown fields (also inside Istio's
// protobuf specs, which Istio's own JSON decoder lets through), fields of
// the wrong case, and kinds without a registered type.
func TestStrictDecoding(t *testing.T) {
	cases := map[string]string{
		"unknown container field": `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: "i:1", imagePullPolicyy: Always}]`,
		"field of the wrong case": `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: "i:1", ImagePullPolicy: Always}]`,
		"wrong type": `apiVersion: v1
kind: Service
metadata: {name: x}
spec: {ports: [{port: "eighty"}]}`,
		"duplicate key": `apiVersion: v1
kind: ServiceAccount
metadata: {name: x, name: y}`,
		"unknown NetworkPolicy field": `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: x}
spec: {podSelector: {}, ingres: []}`,
		"unknown field in an Istio spec": `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: x}
spec:
  action: CUSTOM
  provider: {name: keygate}
  rules: [{to: [{operation: {pathz: ["/*"]}}]}]`,
		"unknown enum value in an Istio spec": `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: x}
spec: {action: CUSTOMISED}`,
		"SecurityPolicy failopen": `apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {name: x}
spec:
  extAuth: {failopen: true, grpc: {backendRefs: [{name: keygate, port: 9191}]}}`,
		"unknown HTTPRoute field": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: x}
spec: {rulez: []}`,
		"unknown kind": `apiVersion: v1
kind: Pod
metadata: {name: x}`,
	}
	for name, doc := range cases {
		if _, err := decodeDocument([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	for name, values := range map[string]string{
		"unknown provider field": "meshConfig:\n  extensionProviders:\n  - name: keygate\n    envoyExtAuthzGrpc: {service: s, port: 1, failopen: true}\n",
		"unknown top-level key":  "meshConfig: {}\nmeshConfg: {}\n",
	} {
		if _, err := decodeMeshValues([]byte(values)); err == nil {
			t.Errorf("mesh values %s: decoded without an error", name)
		} else {
			t.Logf("mesh values %s: %v", name, err)
		}
	}
}

// TestChecksCatch breaks each promise in a fresh build and expects check to
// name the problem, so a check that can never fail does not pass unnoticed.
func TestChecksCatch(t *testing.T) {
	mem := manifestFS(t, true)
	load := func(t *testing.T, dir string) *build {
		b, err := buildDir(mem, dir)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		dir    string
		name   string
		mutate func(b *build)
		want   string
	}{
		{"base", "admin API on all interfaces", func(b *build) {
			setFlag(keygateIn(b), "--admin-addr", "0.0.0.0:9193")
		}, "--admin-addr"},
		{"base", "keygate as a regular container", func(b *build) {
			spec := &deployments(b)[0].Spec.Template.Spec
			c := spec.InitContainers[0]
			c.RestartPolicy = nil
			spec.InitContainers = nil
			spec.Containers = append(spec.Containers, c)
		}, "native sidecar"},
		{"base", "writable root filesystem", func(b *build) {
			keygateIn(b).SecurityContext.ReadOnlyRootFilesystem = nil
		}, "readOnlyRootFilesystem"},
		{"base", "root user", func(b *build) {
			keygateIn(b).SecurityContext.RunAsUser = new(int64)
		}, "runAsUser"},
		{"base", "no liveness probe", func(b *build) {
			keygateIn(b).LivenessProbe = nil
		}, "livenessProbe"},
		{"base", "readiness on /healthz", func(b *build) {
			keygateIn(b).ReadinessProbe.HTTPGet.Path = "/healthz"
		}, "readinessProbe"},
		{"base", "latest image", func(b *build) {
			keygateIn(b).Image = "ghcr.io/keygate/keygate:latest"
		}, "not pinned"},
		{"base", "untagged image", func(b *build) {
			deployments(b)[0].Spec.Template.Spec.Containers[0].Image = "envoyproxy/envoy"
		}, "not pinned"},
		{"base", "NetworkPolicy admits the admin port", func(b *build) {
			np := objectsOf[networkingv1.NetworkPolicy](b)[0]
			p := intstr.FromInt32(adminPort)
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: &p}}})
		}, "9193"},
		{"base", "NetworkPolicy admits every port", func(b *build) {
			np := objectsOf[networkingv1.NetworkPolicy](b)[0]
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
		}, "every port"},
		{"base", "no NetworkPolicy", func(b *build) {
			b.objects = slices.DeleteFunc(b.objects, func(o *object) bool { return o.Kind == "NetworkPolicy" })
		}, "NetworkPolicy"},
		{"base", "missing Secret", func(b *build) {
			b.objects = slices.DeleteFunc(b.objects, func(o *object) bool {
				return o.Kind == "Secret" && strings.HasPrefix(o.Name, "keygate-master-key")
			})
		}, "keygate-master-key"},
		{"base", "Secret without the key", func(b *build) {
			for _, s := range objectsOf[corev1.Secret](b) {
				delete(s.Data, "token")
			}
		}, `no key "token"`},
		{"base", "Envoy fails open", func(b *build) {
			editEnvoy(b, "failure_mode_allow: false", "failure_mode_allow: true")
		}, "failure_mode_allow"},
		{"base", "Envoy answers 200 on error", func(b *build) {
			editEnvoy(b, "status_on_error: {code: ServiceUnavailable}", "status_on_error: {code: OK}")
		}, "status_on_error"},
		{"base", "ext_authz before CORS", func(b *build) {
			editEnvoy(b, "name: envoy.filters.http.cors\n            typed_config:", "name: envoy.filters.http.cors_later\n            typed_config:")
		}, "CORS"},
		{"base", "underscore headers allowed", func(b *build) {
			editEnvoy(b, "headers_with_underscores_action: REJECT_REQUEST", "headers_with_underscores_action: ALLOW")
		}, "headers_with_underscores_action"},
		{"base", "partial bodies", func(b *build) {
			editEnvoy(b, "allow_partial_message: false", "allow_partial_message: true")
		}, "allow_partial_message"},
		{"base", "Envoy dials another socket", func(b *build) {
			editEnvoy(b, "pipe: {path: /run/keygate/grpc.sock}", "pipe: {path: /tmp/grpc.sock}")
		}, "--grpc-socket"},
		{"base", "Service exposes the admin port", func(b *build) {
			s := objectsOf[corev1.Service](b)[0]
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "admin", Port: adminPort, TargetPort: intstr.FromInt32(adminPort)})
		}, "9193"},
		{"base", "service account token mounted", func(b *build) {
			deployments(b)[0].Spec.Template.Spec.AutomountServiceAccountToken = nil
		}, "automountServiceAccountToken"},
		{"base", "store on a PVC with two replicas", func(b *build) {
			d := deployments(b)[0]
			d.Spec.Replicas = new(int32)
			*d.Spec.Replicas = 2
			for i, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == "keygate-data" {
					d.Spec.Template.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "keygate"}}
				}
			}
		}, "bbolt"},
		{"shared", "one replica", func(b *build) {
			*deployments(b)[0].Spec.Replicas = 1
		}, "replicas"},
		{"shared", "no PodDisruptionBudget", func(b *build) {
			b.objects = slices.DeleteFunc(b.objects, func(o *object) bool { return o.Kind == "PodDisruptionBudget" })
		}, "PodDisruptionBudget"},
		{"overlays/istio", "mesh fails open", func(b *build) {
			b.meshValues = bytes.Replace(b.meshValues, []byte("failOpen: false"), []byte("failOpen: true"), 1)
		}, "failOpen"},
		{"overlays/istio", "failOpen left to the default", func(b *build) {
			b.meshValues = bytes.Replace(b.meshValues, []byte("failOpen: false"), nil, 1)
		}, "failOpen"},
		{"overlays/istio", "mesh answers 200 on error", func(b *build) {
			b.meshValues = bytes.Replace(b.meshValues, []byte(`statusOnError: "503"`), []byte(`statusOnError: "200"`), 1)
		}, "statusOnError"},
		{"overlays/istio", "provider points elsewhere", func(b *build) {
			b.meshValues = bytes.Replace(b.meshValues, []byte("keygate.keygate.svc"), []byte("authz.keygate.svc"), 1)
		}, "no Service"},
		{"overlays/istio", "policy names another provider", func(b *build) {
			objectsOf[securityv1.AuthorizationPolicy](b)[0].Spec.GetProvider().Name = "opa"
		}, "provider"},
		{"overlays/istio", "policy ALLOW instead of CUSTOM", func(b *build) {
			objectsOf[securityv1.AuthorizationPolicy](b)[0].Spec.Action = securityv1beta1.AuthorizationPolicy_ALLOW
		}, "CUSTOM"},
		{"overlays/envoy-gateway", "SecurityPolicy fails open", func(b *build) {
			*objectsOf[egv1a1.SecurityPolicy](b)[0].Spec.ExtAuth.FailOpen = true
		}, "failOpen"},
		{"overlays/envoy-gateway", "failOpen left to the default", func(b *build) {
			objectsOf[egv1a1.SecurityPolicy](b)[0].Spec.ExtAuth.FailOpen = nil
		}, "failOpen"},
		{"overlays/envoy-gateway", "backend on the admin port", func(b *build) {
			p := gwv1.PortNumber(adminPort)
			objectsOf[egv1a1.SecurityPolicy](b)[0].Spec.ExtAuth.GRPC.BackendRefs[0].Port = &p
		}, "backendRef"},
		{"overlays/envoy-gateway", "no ReferenceGrant", func(b *build) {
			b.objects = slices.DeleteFunc(b.objects, func(o *object) bool { return o.Kind == "ReferenceGrant" })
		}, "ReferenceGrant"},
		{"overlays/envoy-gateway", "target route missing", func(b *build) {
			b.objects = slices.DeleteFunc(b.objects, func(o *object) bool { return o.Kind == "HTTPRoute" })
		}, "HTTPRoute"},
	}
	for _, c := range cases {
		t.Run(c.dir+"/"+c.name, func(t *testing.T) {
			b := load(t, c.dir)
			if p := check(b); len(p) > 0 {
				t.Fatalf("the unbroken build already has problems: %v", p)
			}
			c.mutate(b)
			p := check(b)
			if !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, c.want) }) {
				t.Errorf("check found %q, want a problem mentioning %q", p, c.want)
			}
		})
	}
}

// kustomizations returns the directories (relative to k8s/) that hold a
// kustomization.yaml.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.ToSlash(filepath.Dir(path)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(dirs)
	return dirs
}

// manifestFS copies this directory's manifests into memory under /k8s,
// without any file of a secrets/ folder but its README (never the operator's
// real secrets), and with test values for the secret files if withSecrets.
func manifestFS(t *testing.T, withSecrets bool) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := "/k8s/" + filepath.ToSlash(path)
		if d.IsDir() {
			if d.Name() == "secrets" && withSecrets {
				for name, value := range testSecrets {
					if err := mem.WriteFile(dst+"/"+name, []byte(value)); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if filepath.Base(filepath.Dir(path)) == "secrets" && d.Name() != "README.md" {
			return nil
		}
		if !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".md") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(dst, data)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

// buildDir runs kustomize on dir of mem and decodes every object it emits.
func buildDir(mem filesys.FileSystem, dir string) (*build, error) {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy // Namespaces first, as `kustomize build` prints them
	m, err := krusty.MakeKustomizer(opts).Run(mem, "/k8s/"+dir)
	if err != nil {
		return nil, err
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, err
	}
	b := &build{dir: dir}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		o, err := decodeDocument([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s, object %d: %w\n%s", dir, i, err, doc)
		}
		b.objects = append(b.objects, o)
	}
	if data, err := mem.ReadFile("/k8s/" + dir + "/istiod-values.yaml"); err == nil {
		b.meshValues = data
	}
	return b, nil
}

// decodeDocument decodes one YAML object strictly into the API type of its
// apiVersion and kind: duplicate keys, unknown fields and fields whose case
// differs from the API's are errors, as they are for the API server's
// strict field validation.
func decodeDocument(doc []byte) (*object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, err
	}
	newType, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return nil, fmt.Errorf("%s %s %s: no API type registered for this kind (add it to kinds)", head.APIVersion, head.Kind, head.Metadata.Name)
	}
	typed := newType()
	if err := decodeStrict(js, typed); err != nil {
		return nil, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	// Istio's specs are protobuf messages whose UnmarshalJSON accepts unknown
	// fields; decode the spec again with protojson, which refuses them.
	if ap, ok := typed.(*securityv1.AuthorizationPolicy); ok && len(head.Spec) > 0 {
		if err := protojson.Unmarshal(head.Spec, &ap.Spec); err != nil {
			return nil, fmt.Errorf("%s %s: spec: %w", head.Kind, head.Metadata.Name, err)
		}
	}
	return &object{APIVersion: head.APIVersion, Kind: head.Kind, Namespace: head.Metadata.Namespace, Name: head.Metadata.Name, Typed: typed}, nil
}

// decodeStrict decodes JSON into v as the API server does with strict field
// validation: case-sensitive names, no unknown and no duplicate fields.
func decodeStrict(js []byte, v any) error {
	strictErrs, err := sigsjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decodeMeshValues decodes istiod Helm values that hold only a meshConfig,
// strictly, into Istio's MeshConfig. It also returns the raw JSON of each
// extension provider by name, to tell an explicit false from a missing field.
func decodeMeshValues(values []byte) (*meshValues, error) {
	js, err := yaml.YAMLToJSONStrict(values)
	if err != nil {
		return nil, err
	}
	var top struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := decodeStrict(js, &top); err != nil {
		return nil, err
	}
	mv := &meshValues{config: new(meshv1alpha1.MeshConfig), rawProviders: map[string]map[string]json.RawMessage{}}
	if err := protojson.Unmarshal(top.MeshConfig, mv.config); err != nil {
		return nil, fmt.Errorf("meshConfig: %w", err)
	}
	var raw struct {
		ExtensionProviders []struct {
			Name              string                     `json:"name"`
			EnvoyExtAuthzGrpc map[string]json.RawMessage `json:"envoyExtAuthzGrpc"`
		} `json:"extensionProviders"`
	}
	if err := json.Unmarshal(top.MeshConfig, &raw); err != nil {
		return nil, err
	}
	for _, p := range raw.ExtensionProviders {
		mv.rawProviders[p.Name] = p.EnvoyExtAuthzGrpc
	}
	return mv, nil
}

type meshValues struct {
	config       *meshv1alpha1.MeshConfig
	rawProviders map[string]map[string]json.RawMessage
}

// problems collects what check finds.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// check returns every broken promise of a build.
func check(b *build) []string {
	var p problems
	checkWorkloads(&p, b)
	switch b.dir {
	case "base":
		checkSidecar(&p, b)
	case "shared":
		checkShared(&p, b)
	case "overlays/istio":
		checkShared(&p, b)
		checkIstio(&p, b)
	case "overlays/envoy-gateway":
		checkShared(&p, b)
		checkEnvoyGateway(&p, b)
	}
	return p
}

// objectsOf returns the objects of type T in b.
func objectsOf[T any](b *build) []*T {
	var out []*T
	for _, o := range b.objects {
		if v, ok := o.Typed.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

func deployments(b *build) []*appsv1.Deployment { return objectsOf[appsv1.Deployment](b) }

// keygateContainer returns keygate's container in spec (an init container
// when it runs as a native sidecar) and whether it is an init container.
func keygateContainer(spec *corev1.PodSpec) (*corev1.Container, bool) {
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == "keygate" {
			return &spec.InitContainers[i], true
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == "keygate" {
			return &spec.Containers[i], false
		}
	}
	return nil, false
}

// keygateIn returns keygate's container in the first Deployment of b.
func keygateIn(b *build) *corev1.Container {
	c, _ := keygateContainer(&deployments(b)[0].Spec.Template.Spec)
	return c
}

// flagValue returns the value of a --name value or --name=value argument.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func setFlag(c *corev1.Container, name, value string) {
	for i, a := range c.Args {
		if a == name && i+1 < len(c.Args) {
			c.Args[i+1] = value
		}
	}
}

func find[T any](b *build, kind, namespace, name string) *T {
	for _, o := range b.objects {
		if o.Kind == kind && o.Namespace == namespace && o.Name == name {
			v, _ := o.Typed.(*T)
			return v
		}
	}
	return nil
}

// checkWorkloads checks every Deployment: its containers, the objects it
// references, keygate's settings, and what reaches keygate's ports.
func checkWorkloads(p *problems, b *build) {
	if len(deployments(b)) == 0 {
		p.addf("no Deployment")
	}
	for _, d := range deployments(b) {
		name := "Deployment " + d.Namespace + "/" + d.Name
		spec := &d.Spec.Template.Spec
		checkPodSecurity(p, name, spec)
		checkReferences(p, b, name, d.Namespace, spec)
		kg, _ := keygateContainer(spec)
		if kg == nil {
			p.addf("%s: no keygate container", name)
			continue
		}
		checkKeygate(p, b, name, d, kg)
		checkReachability(p, b, name, d)
	}
}

func checkPodSecurity(p *problems, name string, spec *corev1.PodSpec) {
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		p.addf("%s: uses the host's namespaces", name)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		p.addf("%s: automountServiceAccountToken is not false", name)
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		cn := fmt.Sprintf("%s container %s", name, c.Name)
		if !pinned(c.Image) {
			p.addf("%s: image %q is not pinned to a tag or digest (and never :latest)", cn, c.Image)
		}
		sc := c.SecurityContext
		if sc == nil {
			p.addf("%s: no securityContext", cn)
			continue
		}
		if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
			p.addf("%s: runAsNonRoot is not true", cn)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid == nil || *uid == 0 {
			p.addf("%s: runAsUser is not a non-zero UID", cn)
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			p.addf("%s: readOnlyRootFilesystem is not true", cn)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p.addf("%s: allowPrivilegeEscalation is not false", cn)
		}
		if isTrue(sc.Privileged) {
			p.addf("%s: privileged", cn)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			p.addf("%s: capabilities do not drop ALL (and add none)", cn)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			p.addf("%s: seccompProfile is not RuntimeDefault", cn)
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// pinned reports whether an image names a tag other than latest, or a digest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || i < strings.LastIndex(image, "/") {
		return false
	}
	tag := image[i+1:]
	return tag != "" && tag != "latest"
}

// checkReferences: every Secret, ConfigMap and ServiceAccount the pod uses
// is in the build, in the Deployment's namespace, with the keys it reads.
func checkReferences(p *problems, b *build, name, ns string, spec *corev1.PodSpec) {
	sa := spec.ServiceAccountName
	if sa == "" {
		p.addf("%s: no serviceAccountName (the default account may mount a token)", name)
	} else if a := find[corev1.ServiceAccount](b, "ServiceAccount", ns, sa); a == nil {
		p.addf("%s: ServiceAccount %s/%s is not in the build", name, ns, sa)
	} else if a.AutomountServiceAccountToken == nil || *a.AutomountServiceAccountToken {
		p.addf("ServiceAccount %s/%s: automountServiceAccountToken is not false", ns, sa)
	}
	secretKeys := func(secret string) (map[string]bool, bool) {
		s := find[corev1.Secret](b, "Secret", ns, secret)
		if s == nil {
			return nil, false
		}
		keys := map[string]bool{}
		for k := range s.Data {
			keys[k] = true
		}
		for k := range s.StringData {
			keys[k] = true
		}
		return keys, true
	}
	configMapKeys := func(cm string) (map[string]bool, bool) {
		c := find[corev1.ConfigMap](b, "ConfigMap", ns, cm)
		if c == nil {
			return nil, false
		}
		keys := map[string]bool{}
		for k := range c.Data {
			keys[k] = true
		}
		for k := range c.BinaryData {
			keys[k] = true
		}
		return keys, true
	}
	need := func(kind, obj, key string, lookup func(string) (map[string]bool, bool)) {
		keys, ok := lookup(obj)
		switch {
		case !ok:
			p.addf("%s: %s %s/%s is not in the build", name, kind, ns, obj)
		case key != "" && !keys[key]:
			p.addf("%s: %s %s/%s has no key %q", name, kind, ns, obj, key)
		}
	}
	for _, v := range spec.Volumes {
		if s := v.Secret; s != nil {
			need("Secret", s.SecretName, "", secretKeys)
			for _, it := range s.Items {
				need("Secret", s.SecretName, it.Key, secretKeys)
			}
		}
		if c := v.ConfigMap; c != nil {
			need("ConfigMap", c.Name, "", configMapKeys)
			for _, it := range c.Items {
				need("ConfigMap", c.Name, it.Key, configMapKeys)
			}
		}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				need("Secret", r.Name, r.Key, secretKeys)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				need("ConfigMap", r.Name, r.Key, configMapKeys)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				need("Secret", e.SecretRef.Name, "", secretKeys)
			}
			if e.ConfigMapRef != nil {
				need("ConfigMap", e.ConfigMapRef.Name, "", configMapKeys)
			}
		}
	}
}

// volumeAt returns the volume mounted at dir in c.
func volumeAt(spec *corev1.PodSpec, c *corev1.Container, dir string) *corev1.Volume {
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) != filepath.Clean(dir) {
			continue
		}
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == m.Name {
				return &spec.Volumes[i]
			}
		}
	}
	return nil
}

func checkKeygate(p *problems, b *build, name string, d *appsv1.Deployment, c *corev1.Container) {
	name += " container keygate"
	spec := &d.Spec.Template.Spec
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		p.addf("%s: args do not start with serve", name)
	}
	// The admin API on loopback (SPEC §1).
	if addr, ok := flagValue(c.Args, "--admin-addr"); !ok {
		p.addf("%s: no explicit --admin-addr", name)
	} else if host, _, err := net.SplitHostPort(addr); err != nil || !(host == "localhost" || net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback()) {
		p.addf("%s: --admin-addr %q is not a loopback address", name, addr)
	}
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		p.addf("%s: runAsUser is not 65532 (the image's nonroot user)", name)
	}
	// Probes: /readyz for startup and readiness, gRPC health for liveness.
	for probeName, pr := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != "/readyz" || containerPort(spec, pr.HTTPGet.Port) != httpPort {
			p.addf("%s: %s is not httpGet /readyz on %d", name, probeName, httpPort)
		}
	}
	if pr := c.LivenessProbe; pr == nil || pr.GRPC == nil || pr.GRPC.Port != grpcPort || pr.GRPC.Service != nil && *pr.GRPC.Service != "" {
		p.addf("%s: livenessProbe is not grpc on %d (service \"\")", name, grpcPort)
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		p.addf("%s: resources need cpu and memory requests and a memory limit", name)
	}
	// Secrets mounted where the flags say, with the file the flag names.
	for _, flag := range []string{"--admin-token-file", "--master-key-file"} {
		file, ok := flagValue(c.Args, flag)
		if !ok {
			p.addf("%s: no %s (keygate would generate a dev default into the data dir)", name, flag)
			continue
		}
		v := volumeAt(spec, c, filepath.Dir(file))
		if v == nil || v.Secret == nil {
			p.addf("%s: %s %s is not in a mounted Secret", name, flag, file)
			continue
		}
		if s := find[corev1.Secret](b, "Secret", d.Namespace, v.Secret.SecretName); s != nil {
			if _, ok := s.Data[filepath.Base(file)]; !ok && len(v.Secret.Items) == 0 {
				p.addf("%s: Secret %s has no key %q for %s", name, v.Secret.SecretName, filepath.Base(file), flag)
			}
		}
	}
	// The store: an emptyDir, or a PVC for a single replica that never runs
	// two pods at once (bbolt's exclusive lock).
	dataDir, ok := flagValue(c.Args, "--data-dir")
	if !ok {
		p.addf("%s: no --data-dir", name)
		return
	}
	switch v := volumeAt(spec, c, dataDir); {
	case v == nil:
		p.addf("%s: --data-dir %s is not a mounted volume (the root filesystem is read-only)", name, dataDir)
	case v.EmptyDir != nil:
	case v.PersistentVolumeClaim != nil:
		surge := d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType &&
			(d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxSurge == nil || d.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 0)
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || surge {
			p.addf("%s: a PVC store needs replicas: 1 and no surge: two pods cannot share one bbolt file", name)
		}
	default:
		p.addf("%s: --data-dir %s is neither an emptyDir nor a PVC", name, dataDir)
	}
}

// containerPort resolves a port number or name against the pod's containers.
func containerPort(spec *corev1.PodSpec, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, cp := range c.Ports {
			if cp.Name == port.StrVal {
				return cp.ContainerPort
			}
		}
	}
	return -1
}

// selects reports whether a label selector in namespace ns selects the pods
// of d.
func selects(sel *metav1.LabelSelector, ns string, d *appsv1.Deployment) bool {
	if ns != d.Namespace || sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(d.Spec.Template.Labels))
}

// admittedPorts returns the ports the NetworkPolicies admit to d's pods, and
// adds a problem if none applies or one admits every port.
func admittedPorts(p *problems, b *build, name string, d *appsv1.Deployment) map[int32]bool {
	admitted := map[int32]bool{}
	covered := false
	for _, np := range objectsOf[networkingv1.NetworkPolicy](b) {
		if !selects(&np.Spec.PodSelector, np.Namespace, d) {
			continue
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(np.Spec.PolicyTypes) > 0 {
			continue
		}
		covered = true
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				p.addf("%s: NetworkPolicy %s admits every port (an ingress rule without ports)", name, np.Name)
			}
			for _, port := range rule.Ports {
				if port.Port == nil {
					p.addf("%s: NetworkPolicy %s admits every port (a port entry without a port)", name, np.Name)
					continue
				}
				first := containerPort(&d.Spec.Template.Spec, *port.Port)
				last := first
				if port.EndPort != nil {
					last = *port.EndPort
				}
				for n := first; n <= last && n-first < 65536; n++ {
					admitted[n] = true
				}
			}
		}
	}
	if !covered {
		p.addf("%s: no NetworkPolicy with an Ingress policy selects its pods", name)
	}
	return admitted
}

// checkReachability: no NetworkPolicy admits and no Service exposes the
// admin port.
func checkReachability(p *problems, b *build, name string, d *appsv1.Deployment) {
	if admittedPorts(p, b, name, d)[adminPort] {
		p.addf("%s: a NetworkPolicy admits the admin port %d", name, adminPort)
	}
	for _, s := range objectsOf[corev1.Service](b) {
		if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, s.Namespace, d) || len(s.Spec.Selector) == 0 {
			continue
		}
		for _, sp := range s.Spec.Ports {
			target := sp.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(sp.Port)
			}
			if sp.Port == adminPort || containerPort(&d.Spec.Template.Spec, target) == adminPort {
				p.addf("%s: Service %s exposes the admin port %d", name, s.Name, adminPort)
			}
		}
	}
}

// checkSidecar checks k8s/base: keygate as a native sidecar, Envoy in front
// of the app, configured to fail closed, and only Envoy's port reachable.
func checkSidecar(p *problems, b *build) {
	ds := deployments(b)
	if len(ds) != 1 {
		p.addf("want one Deployment, the application's; have %d", len(ds))
		return
	}
	d := ds[0]
	spec := &d.Spec.Template.Spec
	kg, init := keygateContainer(spec)
	if kg == nil {
		return
	}
	if !init || kg.RestartPolicy == nil || *kg.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		p.addf("keygate is not a native sidecar (an init container with restartPolicy: Always)")
	}
	var envoy, app *corev1.Container
	for i := range spec.Containers {
		switch spec.Containers[i].Name {
		case "envoy":
			envoy = &spec.Containers[i]
		case "app":
			app = &spec.Containers[i]
		}
	}
	if envoy == nil || app == nil {
		p.addf("want containers envoy and app")
		return
	}
	// Only Envoy's listener is reachable from the network.
	admitted := admittedPorts(&problems{}, b, "", d)
	envoyPort := containerPort(spec, intstr.FromString("http"))
	if len(admitted) != 1 || !admitted[envoyPort] {
		p.addf("the NetworkPolicy admits ports %v; want only Envoy's %d", keys(admitted), envoyPort)
	}
	for _, s := range objectsOf[corev1.Service](b) {
		for _, sp := range s.Spec.Ports {
			if containerPort(spec, sp.TargetPort) != envoyPort {
				p.addf("Service %s port %s targets %s, not Envoy's port", s.Name, sp.Name, sp.TargetPort.String())
			}
		}
	}
	// Envoy's bootstrap, from the ConfigMap it mounts.
	cfgFile, _ := flagValue(envoy.Args, "-c")
	v := volumeAt(spec, envoy, filepath.Dir(cfgFile))
	if v == nil || v.ConfigMap == nil {
		p.addf("envoy: -c %q is not in a mounted ConfigMap", cfgFile)
		return
	}
	cm := find[corev1.ConfigMap](b, "ConfigMap", d.Namespace, v.ConfigMap.Name)
	if cm == nil {
		return // checkReferences said so
	}
	var boot map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data[filepath.Base(cfgFile)]), &boot); err != nil {
		p.addf("envoy bootstrap: %v", err)
		return
	}
	socket, _ := flagValue(kg.Args, "--grpc-socket")
	if socket == "" {
		p.addf("keygate: no --grpc-socket for Envoy")
	} else if kv, ev := volumeAt(spec, kg, filepath.Dir(socket)), volumeAt(spec, envoy, filepath.Dir(socket)); kv == nil || ev == nil || kv.Name != ev.Name {
		p.addf("keygate's --grpc-socket %s is not on a volume keygate and Envoy share", socket)
	}
	appPort := int64(-1)
	for _, e := range app.Env {
		if e.Name == "PORT" {
			appPort, _ = strconv.ParseInt(e.Value, 10, 32)
		}
	}
	checkEnvoyBootstrap(p, boot, int64(envoyPort), socket, appPort)
}

func keys(m map[int32]bool) []int32 {
	var out []int32
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// at walks a decoded YAML document: string keys index maps, ints lists.
func at(v any, path ...any) any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func list(v any) []any { l, _ := v.([]any); return l }

// walkYAML calls fn for every key and value of every map in v.
func walkYAML(v any, fn func(key string, value any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			fn(k, x)
			walkYAML(x, fn)
		}
	case []any:
		for _, x := range v {
			walkYAML(x, fn)
		}
	}
}

func checkEnvoyBootstrap(p *problems, boot map[string]any, listenPort int64, socket string, appPort int64) {
	if a := at(boot, "admin", "address", "socket_address", "address"); a != nil && a != "127.0.0.1" {
		p.addf("envoy: admin interface on %v, not 127.0.0.1", a)
	}
	walkYAML(boot, func(k string, v any) {
		if (k == "failure_mode_allow" || k == "allow_partial_message") && v == true {
			p.addf("envoy: %s: true", k)
		}
	})
	clusters := map[string]any{}
	for _, c := range list(at(boot, "static_resources", "clusters")) {
		clusters[fmt.Sprint(at(c, "name"))] = c
	}
	var hcm any
	for _, l := range list(at(boot, "static_resources", "listeners")) {
		if at(l, "address", "socket_address", "port_value") != float64(listenPort) {
			continue
		}
		for _, f := range list(at(l, "filter_chains", 0, "filters")) {
			if at(f, "name") == "envoy.filters.network.http_connection_manager" {
				hcm = at(f, "typed_config")
			}
		}
	}
	if hcm == nil {
		p.addf("envoy: no HTTP connection manager listening on %d (Envoy's container port)", listenPort)
		return
	}
	if v := at(hcm, "common_http_protocol_options", "headers_with_underscores_action"); v != "REJECT_REQUEST" {
		p.addf("envoy: headers_with_underscores_action is %v, want REJECT_REQUEST", v)
	}
	var names []string
	var authz any
	for _, f := range list(at(hcm, "http_filters")) {
		names = append(names, fmt.Sprint(at(f, "name")))
		if at(f, "name") == "envoy.filters.http.ext_authz" {
			authz = at(f, "typed_config")
		}
	}
	cors, ea := slices.Index(names, "envoy.filters.http.cors"), slices.Index(names, "envoy.filters.http.ext_authz")
	if ea < 0 || authz == nil {
		p.addf("envoy: no ext_authz filter")
		return
	}
	if cors < 0 || cors > ea {
		p.addf("envoy: the CORS filter is not before ext_authz (preflights carry no credential)")
	}
	if len(names) == 0 || names[len(names)-1] != "envoy.filters.http.router" {
		p.addf("envoy: the router is not the last HTTP filter")
	}
	if v, ok := authz.(map[string]any)["failure_mode_allow"]; !ok || v != false {
		p.addf("envoy: ext_authz failure_mode_allow is not explicitly false")
	}
	if v := at(authz, "status_on_error", "code"); v != "ServiceUnavailable" && v != float64(503) {
		p.addf("envoy: ext_authz status_on_error is %v, want 503 (ServiceUnavailable)", v)
	}
	if v := at(authz, "transport_api_version"); v != "V3" {
		p.addf("envoy: ext_authz transport_api_version is %v, want V3", v)
	}
	if d, err := time.ParseDuration(fmt.Sprint(at(authz, "grpc_service", "timeout"))); err != nil || d <= 0 || d > time.Second {
		p.addf("envoy: ext_authz grpc_service.timeout is %v, want at most 1s", at(authz, "grpc_service", "timeout"))
	}
	cluster := clusters[fmt.Sprint(at(authz, "grpc_service", "envoy_grpc", "cluster_name"))]
	if cluster == nil {
		p.addf("envoy: ext_authz names no cluster of the bootstrap")
		return
	}
	if at(cluster, "typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicit_http_config", "http2_protocol_options") == nil {
		p.addf("envoy: the keygate cluster does not speak HTTP/2 (gRPC)")
	}
	if pipe := at(cluster, "load_assignment", "endpoints", 0, "lb_endpoints", 0, "endpoint", "address", "pipe", "path"); pipe != socket {
		p.addf("envoy: the keygate cluster dials %v, not keygate's --grpc-socket %s", pipe, socket)
	}
	// Every route goes to the app on loopback, at the port it listens on.
	for _, vh := range list(at(hcm, "route_config", "virtual_hosts")) {
		for _, r := range list(at(vh, "routes")) {
			c := clusters[fmt.Sprint(at(r, "route", "cluster"))]
			addr := at(c, "load_assignment", "endpoints", 0, "lb_endpoints", 0, "endpoint", "address", "socket_address")
			if at(addr, "address") != "127.0.0.1" || at(addr, "port_value") != float64(appPort) {
				p.addf("envoy: route to %v, not the app on 127.0.0.1:%d", addr, appPort)
			}
		}
	}
}

// checkShared checks k8s/shared and the overlays built on it.
func checkShared(p *problems, b *build) {
	var d *appsv1.Deployment
	for _, x := range deployments(b) {
		if x.Name == "keygate" && x.Namespace == "keygate" {
			d = x
		}
	}
	if d == nil {
		p.addf("no Deployment keygate/keygate")
		return
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		p.addf("Deployment keygate: fewer than 2 replicas; with none ready every request is refused")
	}
	if ns := find[corev1.Namespace](b, "Namespace", "", "keygate"); ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		p.addf("Namespace keygate missing or not enforcing the restricted Pod Security Standard")
	}
	pdb := false
	for _, x := range objectsOf[policyv1.PodDisruptionBudget](b) {
		if selects(x.Spec.Selector, x.Namespace, d) && x.Spec.MinAvailable != nil && x.Spec.MinAvailable.IntValue() >= 1 {
			pdb = true
		}
	}
	if !pdb {
		p.addf("no PodDisruptionBudget keeps a keygate replica available")
	}
	if kg, _ := keygateContainer(&d.Spec.Template.Spec); kg != nil {
		for _, port := range []string{"--grpc-addr", "--http-addr"} {
			if addr, ok := flagValue(kg.Args, port); ok && !strings.HasPrefix(addr, ":") {
				p.addf("Deployment keygate: %s %s is not on every interface; the gateways could not reach it", port, addr)
			}
		}
	}
	admitted := admittedPorts(&problems{}, b, "", d)
	if !admitted[grpcPort] {
		p.addf("the NetworkPolicy does not admit keygate's gRPC port %d", grpcPort)
	}
}

// keygateService finds the Service namespace/name and returns the container
// port its port servicePort reaches in the keygate Deployment (-1 if none).
func keygateService(b *build, namespace, name string, servicePort int32) (*corev1.Service, int32) {
	s := find[corev1.Service](b, "Service", namespace, name)
	if s == nil {
		return nil, -1
	}
	for _, d := range deployments(b) {
		if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, s.Namespace, d) {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if sp.Port == servicePort {
				return s, containerPort(&d.Spec.Template.Spec, sp.TargetPort)
			}
		}
	}
	return s, -1
}

func checkIstio(p *problems, b *build) {
	if b.meshValues == nil {
		p.addf("no istiod-values.yaml")
		return
	}
	mv, err := decodeMeshValues(b.meshValues)
	if err != nil {
		p.addf("istiod-values.yaml: %v", err)
		return
	}
	aps := objectsOf[securityv1.AuthorizationPolicy](b)
	if len(aps) == 0 {
		p.addf("no AuthorizationPolicy")
	}
	for _, ap := range aps {
		name := "AuthorizationPolicy " + ap.Namespace + "/" + ap.Name
		if ap.Spec.Action != securityv1beta1.AuthorizationPolicy_CUSTOM {
			p.addf("%s: action %s, want CUSTOM", name, ap.Spec.Action)
		}
		if ap.Spec.GetSelector() == nil {
			p.addf("%s: no selector: it would apply to every workload of the namespace", name)
		}
		if len(ap.Spec.Rules) == 0 {
			p.addf("%s: no rules: CUSTOM with no rules sends nothing to keygate", name)
		}
		provider := ap.Spec.GetProvider().GetName()
		var found *meshv1alpha1.MeshConfig_ExtensionProvider
		for _, ep := range mv.config.GetExtensionProviders() {
			if ep.GetName() == provider {
				found = ep
			}
		}
		g := found.GetEnvoyExtAuthzGrpc()
		if g == nil {
			p.addf("%s: provider %q is not a envoyExtAuthzGrpc extension provider of istiod-values.yaml", name, provider)
			continue
		}
		pn := "extension provider " + provider
		if raw, ok := mv.rawProviders[provider]["failOpen"]; !ok || string(raw) != "false" || g.GetFailOpen() {
			p.addf("%s: failOpen is not explicitly false", pn)
		}
		if code, err := strconv.Atoi(g.GetStatusOnError()); err != nil || code < 500 || code > 599 {
			p.addf("%s: statusOnError %q, want a 5xx (503)", pn, g.GetStatusOnError())
		}
		if d := g.GetTimeout().AsDuration(); g.GetTimeout() == nil || d <= 0 || d > time.Second {
			p.addf("%s: timeout %v, want at most 1s", pn, d)
		}
		if g.GetIncludeRequestBodyInCheck().GetAllowPartialMessage() {
			p.addf("%s: includeRequestBodyInCheck.allowPartialMessage is true", pn)
		}
		svc, ns, ok := strings.Cut(strings.TrimSuffix(g.GetService(), ".svc.cluster.local"), ".")
		if !ok {
			p.addf("%s: service %q is not <name>.<namespace>.svc.cluster.local", pn, g.GetService())
			continue
		}
		if s, target := keygateService(b, ns, svc, int32(g.GetPort())); s == nil {
			p.addf("%s: no Service %s/%s in the build", pn, ns, svc)
		} else if target != grpcPort {
			p.addf("%s: port %d of Service %s/%s does not reach keygate's gRPC port", pn, g.GetPort(), ns, svc)
		}
	}
}

func checkEnvoyGateway(p *problems, b *build) {
	sps := objectsOf[egv1a1.SecurityPolicy](b)
	if len(sps) == 0 {
		p.addf("no SecurityPolicy")
	}
	for _, sp := range sps {
		name := "SecurityPolicy " + sp.Namespace + "/" + sp.Name
		ea := sp.Spec.ExtAuth
		if ea == nil || ea.GRPC == nil {
			p.addf("%s: no extAuth.grpc", name)
			continue
		}
		if ea.FailOpen == nil || *ea.FailOpen {
			p.addf("%s: extAuth.failOpen is not explicitly false", name)
		}
		if ea.StatusOnError == nil || *ea.StatusOnError < 500 || *ea.StatusOnError > 599 {
			p.addf("%s: extAuth.statusOnError is not a 5xx (503)", name)
		}
		if ea.Timeout == nil {
			p.addf("%s: no extAuth.timeout (Envoy Gateway's default is 10s)", name)
		} else if d, err := time.ParseDuration(string(*ea.Timeout)); err != nil || d <= 0 || d > time.Second {
			p.addf("%s: extAuth.timeout %s, want at most 1s", name, *ea.Timeout)
		}
		if len(ea.GRPC.BackendRefs) == 0 {
			p.addf("%s: no extAuth.grpc.backendRefs", name)
		}
		for _, ref := range ea.GRPC.BackendRefs {
			ns := sp.Namespace
			if ref.Namespace != nil {
				ns = string(*ref.Namespace)
			}
			if ref.Kind != nil && *ref.Kind != "Service" || ref.Group != nil && *ref.Group != "" || ref.Port == nil {
				p.addf("%s: backendRef %s is not a core Service with a port", name, ref.Name)
				continue
			}
			if s, target := keygateService(b, ns, string(ref.Name), int32(*ref.Port)); s == nil {
				p.addf("%s: backendRef Service %s/%s is not in the build", name, ns, ref.Name)
			} else if target != grpcPort {
				p.addf("%s: backendRef %s/%s port %d does not reach keygate's gRPC port", name, ns, ref.Name, *ref.Port)
			}
			if ns != sp.Namespace && !referenceGranted(b, sp.Namespace, ns, string(ref.Name)) {
				p.addf("%s: no ReferenceGrant in %s lets SecurityPolicies of %s reference Service %s", name, ns, sp.Namespace, ref.Name)
			}
		}
		if len(sp.Spec.TargetRefs) == 0 {
			p.addf("%s: no targetRefs", name)
		}
		for _, tr := range sp.Spec.TargetRefs {
			if tr.Group != gwv1.GroupName || tr.Kind != "HTTPRoute" || find[gwv1.HTTPRoute](b, "HTTPRoute", sp.Namespace, string(tr.Name)) == nil {
				p.addf("%s: targetRef %s %s is not an HTTPRoute of the build in %s", name, tr.Kind, tr.Name, sp.Namespace)
			}
		}
	}
}

func referenceGranted(b *build, fromNS, toNS, service string) bool {
	for _, rg := range objectsOf[gwv1beta1.ReferenceGrant](b) {
		if rg.Namespace != toNS {
			continue
		}
		from := slices.ContainsFunc(rg.Spec.From, func(f gwv1.ReferenceGrantFrom) bool {
			return f.Group == egv1a1.GroupName && f.Kind == egv1a1.KindSecurityPolicy && string(f.Namespace) == fromNS
		})
		to := slices.ContainsFunc(rg.Spec.To, func(t gwv1.ReferenceGrantTo) bool {
			return t.Group == "" && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == service)
		})
		if from && to {
			return true
		}
	}
	return false
}

// editEnvoy replaces old with new in the Envoy bootstrap ConfigMap of b.
func editEnvoy(b *build, old, new string) {
	for _, cm := range objectsOf[corev1.ConfigMap](b) {
		if s, ok := cm.Data["envoy.yaml"]; ok {
			if !strings.Contains(s, old) {
				panic("envoy bootstrap has no " + strconv.Quote(old))
			}
			cm.Data["envoy.yaml"] = strings.Replace(s, old, new, 1)
		}
	}
}
