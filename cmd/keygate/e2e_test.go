package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// djangoKey returns a key made the way Django apps make them
// (secrets.token_urlsafe(32)) and its hashlib.sha256 hex digest, both
// computed by Python itself.
func djangoKey(t *testing.T) (key, digest string) {
	t.Helper()
	out, err := exec.Command("python3", "-c",
		"import hashlib, secrets; k = secrets.token_urlsafe(32); print(k, hashlib.sha256(k.encode()).hexdigest())").Output()
	if err != nil {
		t.Fatalf("python3 is needed to mint a Django-style key: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("python3 printed %q", out)
	}
	return f[0], f[1]
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
	return resp.StatusCode, m
}

// TestEndToEnd drives the real binary only through its CLI, the admin API
// and Envoy-shaped gRPC Checks.
func TestEndToEnd(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	sock := filepath.Join(t.TempDir(), "kg.sock")
	kg := startKeygate(t, dataDir, "--grpc-socket", sock, "--flush-interval", "1s")

	// Dev-default secrets were generated with mode 0600.
	for _, f := range []string{"admin.token", "master.key"} {
		fi, err := os.Stat(filepath.Join(dataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	// Probes.
	code, ready := getJSON(t, "http://"+kg.addrs["http"]+"/readyz")
	if code != 200 || ready["status"] != "ready" || ready["revision"] != float64(0) {
		t.Fatalf("/readyz = %d %v", code, ready)
	}
	if code, _ := getJSON(t, "http://"+kg.addrs["http"]+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	cc, err := grpc.NewClient(kg.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		hr, err := healthpb.NewHealthClient(cc).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v", svc, hr, err)
		}
	}

	// Fill the store with the CLI.
	kg.mustCLI(t, "tenant", "create", "acme-corp", "--name", "Acme Corp")
	kg.mustCLI(t, "tenant", "create", "globex")
	kg.mustCLI(t, "client", "create", "--tenant", "acme-corp", "--id", "cl_datasync", "--name", "Data Sync",
		"--scopes", "read:*,write:projects", "--roles", "read,write")
	out := kg.mustCLI(t, "apikey", "create", "--client", "cl_datasync", "--name", "ci", "-o", "json")
	var created struct {
		ID, Key  string
		Revision uint64
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("apikey create -o json: %v: %s", err, out)
	}
	if !strings.HasPrefix(created.Key, "kg_") || len(created.Key) != 49 || !strings.HasPrefix(created.ID, "ak_") {
		t.Fatalf("generated key %q id %q", created.Key, created.ID)
	}
	// The key is never shown again.
	if list := kg.mustCLI(t, "apikey", "list", "-o", "json"); strings.Contains(list, created.Key) {
		t.Fatal("apikey list shows the key")
	}
	dk, dsum := djangoKey(t)
	kg.mustCLI(t, "apikey", "import", "--client", "cl_datasync", "--id", "ak_django", "--sha256", dsum)
	// Plaintext import from stdin.
	plain := "legacy-key-0123456789abcdefABCDEF"
	if o, e, c := kg.cli(t, plain+"\n", "apikey", "import", "--client", "cl_datasync", "--id", "ak_legacy", "--key-file", "-"); c != 0 {
		t.Fatalf("import from stdin: %d %s %s", c, o, e)
	}

	az := kg.authz(t)
	ext := map[string]string{"keygate.scopes": "read:projects"}
	cases := []struct {
		name    string
		headers map[string]string
		keyID   string
	}{
		{"generated key in X-API-Key", map[string]string{"x-api-key": created.Key}, created.ID},
		{"Django key as Authorization: ApiKey", map[string]string{"authorization": "ApiKey " + dk}, "ak_django"},
		{"Django key in X-API-Key", map[string]string{"x-api-key": dk}, "ak_django"},
		{"imported plaintext as Token", map[string]string{"authorization": "Token " + plain}, "ak_legacy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"x-tenant-id": "victim", "x-auth-subject": "admin", "x-auth-scopes": "*"}
			for k, v := range c.headers {
				h[k] = v
			}
			resp, err := az.Check(ctxT(t), envoyCheck("GET", "/v1/projects", h, ext))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus().GetCode() != 0 {
				t.Fatalf("denied: %v", resp)
			}
			got := okHeaders(resp)
			want := map[string]string{"x-tenant-id": "acme-corp", "x-auth-subject": "cl_datasync", "x-auth-client-id": "cl_datasync",
				"x-auth-key-id": c.keyID, "x-auth-method": "apikey", "x-auth-scopes": "read:* write:projects"}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, hv := range resp.GetOkResponse().GetHeaders() {
				if hv.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
					t.Errorf("%s is not set by overwrite: %v", hv.GetHeader().GetKey(), hv.GetAppendAction())
				}
			}
			rm := resp.GetOkResponse().GetHeadersToRemove()
			for k := range c.headers {
				if !slices.Contains(rm, k) {
					t.Errorf("credential header %s is not removed upstream (remove: %v)", k, rm)
				}
			}
		})
	}

	// Denies: no credential, wrong tenant pin, missing scope, unknown key.
	denies := []struct {
		name    string
		headers map[string]string
		ext     map[string]string
		status  int32
		code    string
	}{
		{"no credential", nil, ext, 401, "not_authenticated"},
		{"unknown key", map[string]string{"x-api-key": "kg_" + strings.Repeat("A", 46)}, ext, 401, "invalid_api_key"},
		{"other tenant's route", map[string]string{"x-api-key": created.Key}, map[string]string{"keygate.tenant": "globex"}, 403, "forbidden"},
		{"missing scope", map[string]string{"x-api-key": created.Key}, map[string]string{"keygate.scopes": "admin:billing"}, 403, "insufficient_scope"},
	}
	for _, d := range denies {
		t.Run(d.name, func(t *testing.T) {
			resp, err := az.Check(ctxT(t), envoyCheck("GET", "/v1/projects", d.headers, d.ext))
			if err != nil {
				t.Fatal(err)
			}
			dr := resp.GetDeniedResponse()
			if resp.GetStatus().GetCode() == 0 || dr == nil || int32(dr.GetStatus().GetCode()) != d.status {
				t.Fatalf("got %v, want deny %d", resp, d.status)
			}
			var body struct{ Detail, Code string }
			if err := json.Unmarshal([]byte(dr.GetBody()), &body); err != nil || body.Code != d.code || body.Detail == "" {
				t.Fatalf("body %q: %v", dr.GetBody(), err)
			}
		})
	}

	// The unix socket serves the same Checks.
	uc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if resp, err := newAuthz(uc).Check(ctxT(t), envoyCheck("GET", "/v1/projects", map[string]string{"x-api-key": created.Key}, ext)); err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("check over unix socket: %v %v", resp, err)
	}

	// Disable the key: the very next Check sees it.
	kg.mustCLI(t, "apikey", "disable", created.ID)
	resp, err := az.Check(ctxT(t), envoyCheck("GET", "/v1/projects", map[string]string{"x-api-key": created.Key}, ext))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("disabled key: %v %v", resp, err)
	}

	// Status and readiness agree on the revision.
	var st struct {
		Revision uint64
		Counts   map[string]int
	}
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	_, ready = getJSON(t, "http://"+kg.addrs["http"]+"/readyz")
	if st.Revision == 0 || ready["revision"] != float64(st.Revision) || st.Counts["apikeys"] != 3 {
		t.Fatalf("status %+v, readyz %v", st, ready)
	}

	// Metrics count the decisions.
	mresp, err := http.Get("http://" + kg.addrs["http"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{"keygate_check_total", "keygate_store_revision", `keygate_credentials_active{kind="apikeys"} 2`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// SIGTERM: clean exit; the restart serves the same state.
	if err := kg.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, kg.log.String())
	}
	logs := kg.log.String()
	for _, secret := range []string{created.Key, dk, dsum, plain, readFile(t, filepath.Join(dataDir, "admin.token"))} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret %q…", secret[:8])
		}
	}
	if !strings.Contains(logs, "keygate stopped cleanly") {
		t.Errorf("no clean stop in log:\n%s", logs)
	}

	kg2 := startKeygate(t, dataDir)
	_, ready = getJSON(t, "http://"+kg2.addrs["http"]+"/readyz")
	if ready["revision"] != float64(st.Revision) {
		t.Fatalf("after restart revision %v, want %d", ready["revision"], st.Revision)
	}
	resp, err = kg2.authz(t).Check(ctxT(t), envoyCheck("GET", "/v1/projects", map[string]string{"x-api-key": dk}, ext))
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("after restart: %v %v", resp, err)
	}
	// Last use was flushed at shutdown and survives the restart.
	var keys []struct {
		ID         string  `json:"id"`
		LastUsedAt *string `json:"last_used_at"`
		LastUsedIP string  `json:"last_used_ip"`
	}
	if err := json.Unmarshal([]byte(kg2.mustCLI(t, "apikey", "list", "--client", "cl_datasync", "-o", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == "ak_legacy" && (k.LastUsedAt == nil || k.LastUsedIP != "10.0.1.5") {
			t.Errorf("ak_legacy last use not kept: %+v", k)
		}
	}

	// A backup is a store keygate can serve from.
	restored := filepath.Join(t.TempDir(), "restored")
	os.MkdirAll(restored, 0o700)
	kg2.mustCLI(t, "backup", "-o", filepath.Join(restored, "keygate.db"))
	kg3 := startKeygate(t, restored)
	_, ready = getJSON(t, "http://"+kg3.addrs["http"]+"/readyz")
	if ready["revision"] != float64(st.Revision) {
		t.Fatalf("restored backup at revision %v, want %d", ready["revision"], st.Revision)
	}
	resp, err = kg3.authz(t).Check(ctxT(t), envoyCheck("GET", "/v1/projects", map[string]string{"x-api-key": dk}, ext))
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("restored backup: %v %v", resp, err)
	}
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
