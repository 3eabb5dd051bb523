package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// metric reads one unlabelled gauge from keygate's /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// TestManyConcurrentStreams opens 6,000 concurrent Checks over two
// connections: keygate answers all of them while its goroutines stay
// bounded by the per-connection stream limit (1,024) and its memory stays
// small.
func TestManyConcurrentStreams(t *testing.T) {
	kg := startKeygate(t, filepath.Join(t.TempDir(), "data"))
	kg.mustCLI(t, "tenant", "create", "acme")
	kg.mustCLI(t, "client", "create", "--tenant", "acme", "--id", "cl_many")
	var created struct{ Key string }
	if err := json.Unmarshal([]byte(kg.mustCLI(t, "apikey", "create", "--client", "cl_many", "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	base := metric(t, kg.addrs["http"], "go_goroutines")
	req := envoyCheck("GET", "/x", map[string]string{"x-api-key": created.Key}, nil)

	var clients []authv3.AuthorizationClient
	for i := 0; i < 2; i++ {
		cc, err := grpc.NewClient(kg.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		clients = append(clients, authv3.NewAuthorizationClient(cc))
	}
	const n = 6000
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(c authv3.AuthorizationClient) {
			defer wg.Done()
			<-start
			resp, err := c.Check(ctxT(t), req)
			if err != nil {
				t.Error(err)
				return
			}
			if resp.GetStatus().GetCode() == 0 {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}(clients[i%2])
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	close(start)
	// Sample the server while the load lasts (observation, not synchronisation).
	peak := base
	for done := false; !done; {
		select {
		case <-finished:
			done = true
		default:
			if g := metric(t, kg.addrs["http"], "go_goroutines"); g > peak {
				peak = g
			}
		}
	}
	if allowed != n {
		t.Fatalf("%d of %d Checks allowed", allowed, n)
	}
	if limit := base + 2*1024 + 64; peak > limit {
		t.Fatalf("goroutines peaked at %v (base %v), over the bound %v", peak, base, limit)
	}
	if rss := metric(t, kg.addrs["http"], "process_resident_memory_bytes"); rss > 256<<20 {
		t.Fatalf("RSS %v MiB after %d concurrent Checks", rss/(1<<20), n)
	}
	t.Logf("%d concurrent Checks: goroutines base %v, peak %v", n, base, peak)
}
