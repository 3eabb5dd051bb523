package admin

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/keygate/keygate/credentials"
)

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// TestOpenAPIRoutes checks that every route is documented and every
// documented operation is routed.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("openapi.yaml has no paths")
	}
	var documented []string
	for p, v := range paths {
		for m := range v.(map[string]any) {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				documented = append(documented, strings.ToUpper(m)+" "+p)
			}
		}
	}
	var routed []string
	for _, rt := range routes {
		routed = append(routed, rt.pattern())
	}
	sort.Strings(documented)
	sort.Strings(routed)
	if diff := cmp.Diff(routed, documented); diff != "" {
		t.Fatalf("routes (-) and openapi.yaml (+) differ:\n%s", diff)
	}
}

// TestOpenAPISchemas checks that each schema lists exactly the JSON fields
// of the Go type it describes (allOf parts merged).
func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	types := map[string]any{
		"Error":           errorBody{},
		"Tenant":          credentials.Tenant{},
		"Client":          credentials.Client{},
		"APIKey":          credentials.APIKey{},
		"SnapshotClient":  credentials.SnapshotClient{},
		"Snapshot":        credentials.Snapshot{},
		"Deletes":         credentials.Deletes{},
		"ChangeBatch":     credentials.ChangeBatch{},
		"ApplyResult":     credentials.ApplyResult{},
		"Counts":          credentials.Counts{},
		"Status":          credentials.Status{},
		"TenantResult":    tenantResult{},
		"ClientResult":    clientResult{},
		"APIKeyResult":    apiKeyResult{},
		"NewAPIKeyResult": newAPIKeyResult{},
		"TenantList":      tenantList{},
		"ClientList":      clientList{},
		"APIKeyList":      apiKeyList{},
		"RotateRequest":   rotateRequest{},

		"HMACKey":       credentials.HMACKey{},
		"HMACKeyResult": hmacKeyResult{},
		"HMACKeyList":   hmacKeyList{},

		"Issuer":             credentials.Issuer{},
		"JWKS":               credentials.JWKS{},
		"JWK":                credentials.JWK{},
		"Revocation":         credentials.Revocation{},
		"RevokeRequest":      revokeRequest{},
		"IssuerResult":       issuerResult{},
		"IssuerList":         issuerList{},
		"RevocationList":     revocationList{},
		"RevokeTokensResult": revokeTokensResult{},
	}
	for name := range schemas {
		if _, ok := types[name]; !ok && name != "Revision" {
			t.Errorf("schema %s describes no Go type of the API", name)
		}
	}
	for name, v := range types {
		if _, ok := schemas[name]; !ok {
			t.Errorf("openapi.yaml lacks schema %s", name)
			continue
		}
		got := schemaProps(t, schemas, name)
		want := jsonFields(reflect.TypeOf(v))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("schema %s: Go fields (-) and documented properties (+) differ:\n%s", name, diff)
		}
	}
}

// schemaProps returns the sorted property names of schema name.
func schemaProps(t *testing.T, schemas map[string]any, name string) []string {
	set := map[string]bool{}
	var walk func(s map[string]any)
	walk = func(s map[string]any) {
		if ref, ok := s["$ref"].(string); ok {
			walk(schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any))
			return
		}
		for _, part := range asSlice(s["allOf"]) {
			walk(part.(map[string]any))
		}
		for p := range asMap(s["properties"]) {
			set[p] = true
		}
	}
	walk(schemas[name].(map[string]any))
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

// jsonFields returns the sorted JSON names encoding/json uses for t.
func jsonFields(t reflect.Type) []string {
	set := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			set[name] = true
		}
	}
	walk(t)
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
