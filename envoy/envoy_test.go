package envoy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every extension type the configs pack in an Any. A config that uses
	// another one fails with "unknown Any type": add its package here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// The configs this package ships; configFiles must find at least these.
var shipped = []string{"front-proxy.yaml", "http-service.yaml", "sidecar-uds.yaml", "sidecar.yaml"}

// config is one Envoy Bootstrap read from a file.
type config struct {
	name      string // file (and, in a ConfigMap, "#data-key")
	bootstrap *bootstrapv3.Bootstrap
}

// configFiles returns the Envoy configs to check: every *.yaml directly in
// envoy/ (not testdata/) and every k8s/**/envoy*.yaml.
func configFiles(t *testing.T) []string {
	t.Helper()
	files, err := findConfigs(".", filepath.Join("..", "k8s"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// findConfigs returns dir/*.yaml and every envoy*.yaml under k8sDir (which
// may be missing), skipping testdata and hidden directories there.
func findConfigs(dir, k8sDir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == k8sDir {
				return fs.SkipAll // no k8s/ at all: nothing to check there
			}
			return err
		}
		if d.IsDir() {
			if path != k8sDir && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return fs.SkipDir
			}
			return nil
		}
		if ok, _ := filepath.Match("envoy*.yaml", d.Name()); ok {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// loadFile reads every Envoy Bootstrap in a file: the file itself, or for a
// Kubernetes manifest each ConfigMap data entry named *.yaml, *.yml or
// *.json. Other Kubernetes objects in the file are reported with t.Logf. A
// file with no Bootstrap at all is an error.
func loadFile(t *testing.T, path string) ([]config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []config
	for i, doc := range splitYAML(data) {
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Data       map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d: %v", path, i+1, err)
		}
		if head.APIVersion == "" || head.Kind == "" {
			b, err := decodeBootstrap(doc)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", path, err)
			}
			out = append(out, config{name: path, bootstrap: b})
			continue
		}
		if head.Kind != "ConfigMap" {
			t.Logf("%s: document %d is a %s, not an Envoy config", path, i+1, head.Kind)
			continue
		}
		keys := make([]string, 0, len(head.Data))
		for k := range head.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !strings.HasSuffix(k, ".yaml") && !strings.HasSuffix(k, ".yml") && !strings.HasSuffix(k, ".json") {
				continue
			}
			b, err := decodeBootstrap([]byte(head.Data[k]))
			if err != nil {
				return nil, fmt.Errorf("%s#%s: %v", path, k, err)
			}
			out = append(out, config{name: path + "#" + k, bootstrap: b})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no Envoy Bootstrap in the file", path)
	}
	return out, nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitYAML splits a YAML stream into its non-empty documents.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// decodeBootstrap converts YAML to JSON and unmarshals it strictly: unknown
// fields and Any types no linked package defines are errors.
func decodeBootstrap(doc []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("YAML: %v", err)
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return nil, fmt.Errorf("JSON: %v", err)
	}
	if unknown := unknownAnyTypes(tree, ""); len(unknown) > 0 {
		return nil, fmt.Errorf("unknown Any type(s), blank-import their Go packages in envoy/envoy_test.go: %s",
			strings.Join(unknown, "; "))
	}
	b := new(bootstrapv3.Bootstrap)
	opts := protojson.UnmarshalOptions{DiscardUnknown: false, Resolver: protoregistry.GlobalTypes}
	if err := opts.Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("decode Bootstrap: %v", err)
	}
	return b, nil
}

// unknownAnyTypes lists the "@type" values in a decoded JSON tree that the
// linked protobuf registry does not know, with where they are.
func unknownAnyTypes(v any, path string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if t, ok := v["@type"].(string); ok {
			if _, err := protoregistry.GlobalTypes.FindMessageByURL(t); err != nil {
				out = append(out, fmt.Sprintf("%s at %s", t, or(path, ".")))
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, unknownAnyTypes(v[k], path+"."+k)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, unknownAnyTypes(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// node is one message of a config: its path from the Bootstrap, the message
// (an Any is replaced by the message it packs), and its ancestors, nearest
// last (Anys skipped).
type node struct {
	path    string
	msg     proto.Message
	parents []proto.Message
	packed  bool // msg came out of an Any
}

// nodes flattens a config into every message it holds, unpacking each Any.
// An Any that cannot be unpacked is an error.
func nodes(root proto.Message) ([]node, error) {
	var out []node
	var errs []error
	var walk func(m proto.Message, path string, parents []proto.Message, packed bool)
	walk = func(m proto.Message, path string, parents []proto.Message, packed bool) {
		if a, ok := m.(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: Any %s: %v", path, a.GetTypeUrl(), err))
				return
			}
			walk(inner, path, parents, true)
			return
		}
		out = append(out, node{path: path, msg: m, parents: parents, packed: packed})
		parents = append(slices.Clip(parents), m)
		m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := path + "." + string(fd.Name())
			switch {
			case fd.IsMap():
				if fd.MapValue().Message() == nil {
					return true
				}
				var keys []protoreflect.MapKey
				v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					keys = append(keys, k)
					return true
				})
				sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
				for _, k := range keys {
					walk(v.Map().Get(k).Message().Interface(), fmt.Sprintf("%s[%s]", name, k.String()), parents, false)
				}
			case fd.IsList():
				if fd.Message() == nil {
					return true
				}
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message().Interface(), fmt.Sprintf("%s[%d]", name, i), parents, false)
				}
			case fd.Message() != nil:
				walk(v.Message().Interface(), name, parents, false)
			}
			return true
		})
	}
	walk(root, "", nil, false)
	return out, errors.Join(errs...)
}

// validateConfig runs ValidateAll (protoc-gen-validate's rules) on the
// Bootstrap and on every message packed in an Any inside it: ValidateAll on
// a message does not look into its Anys.
func validateConfig(b *bootstrapv3.Bootstrap) error {
	all, err := nodes(b)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range all {
		if n.path != "" && !n.packed {
			continue
		}
		v, ok := n.msg.(interface{ ValidateAll() error })
		if !ok {
			continue // a well-known type such as google.protobuf.Struct
		}
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %v", or(n.path, "Bootstrap"), n.msg.ProtoReflect().Descriptor().FullName(), err))
		}
	}
	return errors.Join(errs...)
}

func TestConfigFilesFound(t *testing.T) {
	files := configFiles(t)
	for _, want := range shipped {
		if !slices.Contains(files, want) {
			t.Errorf("configFiles() = %v, missing %s", files, want)
		}
	}
	for _, f := range files {
		if strings.Contains(filepath.ToSlash(f), "testdata/") {
			t.Errorf("configFiles() picked up %s from testdata", f)
		}
	}
	t.Logf("checking %v", files)
}

// TestFindConfigs runs the file search on a fake tree: k8s manifests named
// envoy*.yaml at any depth are found, other manifests and testdata are not,
// and a ConfigMap's config is decoded like a file.
func TestFindConfigs(t *testing.T) {
	root := filepath.Join("testdata", "find")
	files, err := findConfigs(filepath.Join(root, "envoy"), filepath.Join(root, "k8s"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(root, "envoy", "a.yaml"),
		filepath.Join(root, "k8s", "overlays", "sidecar", "envoy-configmap.yaml"),
	}
	if !slices.Equal(files, want) {
		t.Fatalf("findConfigs() = %q, want %q", files, want)
	}
	cs, err := loadFile(t, want[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].name != want[1]+"#envoy.yaml" {
		t.Fatalf("loadFile(%s) = %d configs (%v), want one named #envoy.yaml", want[1], len(cs), cs)
	}
	if err := validateConfig(cs[0].bootstrap); err != nil {
		t.Fatal(err)
	}
	if problems, err := lint(cs[0].bootstrap); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %q, %v", problems, err)
	}
	if files, err := findConfigs(filepath.Join(root, "envoy"), filepath.Join(root, "missing")); err != nil || len(files) != 1 {
		t.Fatalf("findConfigs without a k8s directory = %q, %v; want just a.yaml", files, err)
	}
}

// TestConfigsDecodeAndValidate decodes every config strictly into a
// Bootstrap and validates it and every typed config inside it.
func TestConfigsDecodeAndValidate(t *testing.T) {
	for _, f := range configFiles(t) {
		t.Run(f, func(t *testing.T) {
			cs, err := loadFile(t, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				if err := validateConfig(c.bootstrap); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
			}
		})
	}
}

// TestInvalidConfigsRefused proves the decoder and validator are strict:
// each testdata/invalid file must fail with the text of its "# want:" line.
func TestInvalidConfigsRefused(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/invalid/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wantLine(t, f)
			cs, err := loadFile(t, f)
			if err == nil {
				for _, c := range cs {
					err = errors.Join(err, validateConfig(c.bootstrap))
				}
			}
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
		})
	}
}

// wantLine returns the text after "# want: " in a testdata file.
func wantLine(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			return strings.TrimSpace(w)
		}
	}
	t.Fatalf("%s has no \"# want: \" line", path)
	return ""
}
