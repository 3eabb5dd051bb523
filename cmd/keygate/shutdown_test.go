package main

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestSIGTERMUnderLoad sends SIGTERM while Checks are in flight: every
// Check either gets a complete decision or a clear gRPC error, never an
// allow without a decision, and keygate exits cleanly.
func TestSIGTERMUnderLoad(t *testing.T) {
	kg := startKeygate(t, filepath.Join(t.TempDir(), "data"))
	kg.mustCLI(t, "tenant", "create", "acme")
	kg.mustCLI(t, "client", "create", "--tenant", "acme", "--id", "cl_load")
	var created struct{ Key string }
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "apikey", "create", "--client", "cl_load", "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	az := kg.authz(t)
	req := envoyCheck("GET", "/x", map[string]string{"x-api-key": created.Key}, nil)

	var allowed, failed, bad atomic.Int64
	terminate := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				resp, err := az.Check(ctxT(t), req)
				if err != nil {
					switch status.Code(err) {
					case codes.Unavailable, codes.Canceled:
						failed.Add(1)
					default:
						bad.Add(1)
						t.Errorf("unexpected error: %v", err)
					}
					return // the server is going away
				}
				if resp.GetStatus().GetCode() != 0 || okHeaders(resp)["x-tenant-id"] != "acme" {
					bad.Add(1)
					t.Errorf("not a complete allow: %v", resp)
					return
				}
				if allowed.Add(1) == 500 {
					once.Do(func() { close(terminate) })
				}
			}
		}()
	}
	<-terminate
	err := kg.stop(t)
	wg.Wait()
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, kg.log.String())
	}
	if bad.Load() != 0 || allowed.Load() < 500 {
		t.Fatalf("allowed %d, failed %d, bad %d", allowed.Load(), failed.Load(), bad.Load())
	}
	t.Logf("%d complete allows, %d clear errors after SIGTERM", allowed.Load(), failed.Load())
}
