package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/keygate/keygate/bolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestNotServingUntilLoaded holds the store's file lock so keygate stays
// between "listening" and "loaded": gRPC health must be NOT_SERVING,
// /readyz 503 and Checks refused; once the lock is released keygate
// loads and serves.
func TestNotServingUntilLoaded(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	holder, err := bolt.Open(filepath.Join(dataDir, "keygate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(keygateBin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", dataDir, "--lock-timeout", "5m")
	kg := startUntil(t, cmd, dataDir, "opening store")

	cc, err := grpc.NewClient(kg.addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		hr, err := healthpb.NewHealthClient(cc).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || hr.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("health %q before load = %v, %v; want NOT_SERVING", svc, hr, err)
		}
	}
	resp, err := newAuthz(cc).Check(ctxT(t), envoyCheck("GET", "/", map[string]string{"x-api-key": "kg_whatever"}, nil))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Check before load = %v, %v; want UNAVAILABLE", resp, err)
	}
	code, body := getJSON(t, "http://"+kg.addr("http")+"/readyz")
	if code != http.StatusServiceUnavailable || body["status"] != "starting" {
		t.Fatalf("/readyz before load = %d %v", code, body)
	}
	if code, _ := getJSON(t, "http://"+kg.addr("http")+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d (the process is alive)", code)
	}

	holder.Close()
	kg.waitLog(t, "keygate ready")
	hr, err := healthpb.NewHealthClient(cc).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after load = %v, %v", hr, err)
	}
	resp, err = newAuthz(cc).Check(ctxT(t), envoyCheck("GET", "/", nil, nil))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("Check after load = %v, %v; want a 401 deny", resp, err)
	}
}

// TestLockedStoreFails: a store another process holds stops keygate after
// --lock-timeout with an error naming the file.
func TestLockedStoreFails(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	holder, err := bolt.Open(filepath.Join(dataDir, "keygate.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	out, err := exec.Command(keygateBin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", dataDir, "--lock-timeout", "100ms").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1; output:\n%s", err, out)
	}
	if want := "is locked by another process"; !contains(string(out), want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}

// TestCorruptStoreRefusesToStart: a damaged keygate.db stops keygate with
// a clear error and a non-zero exit, and the file is left as it was.
func TestCorruptStoreRefusesToStart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dataDir, 0o700)
	garbage := bytes.Repeat([]byte("not a bbolt page "), 4096)
	db := filepath.Join(dataDir, "keygate.db")
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygateBin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", dataDir).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1; output:\n%s", err, out)
	}
	if want := "is corrupted or not a keygate store"; !contains(string(out), want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(after, garbage) {
		t.Fatal("keygate changed the corrupted file")
	}
}
