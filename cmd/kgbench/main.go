// Command kgbench is keygate's loopback load test: it starts a keygate
// binary and a no-op ext_authz server (this binary, "kgbench noop") with
// the same gRPC settings, seeds keygate through its admin API, drives both
// with the same Envoy-shaped CheckRequests over real gRPC, and prints RPS,
// latency percentiles, server CPU time per Check and the keygate/no-op
// ratios. Client and servers share the machine, so only ratios measured in
// one run mean anything.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/extauthz"
	"github.com/keygate/keygate/internal/gcgoal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "noop" {
		os.Exit(noop(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

// noop serves a no-op ext_authz server that allows everything with a
// constant response; it prints "listening ADDR" on stdout.
func noop(args []string) int {
	fs := flag.NewFlagSet("kgbench noop", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	pprofAddr := fs.String("pprof", os.Getenv("KGBENCH_NOOP_PPROF"), "serve /debug/pprof/ on this address (for comparing profiles)")
	fs.Parse(args)
	if *pprofAddr != "" {
		go http.ListenAndServe(*pprofAddr, nil)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gcgoal.Adjust(64 << 20) // the same GC policy as keygate serve, for a like-for-like baseline
	gs := grpc.NewServer(extauthz.ServerOptions(4 << 20)...)
	(&extauthz.NoopServer{}).Register(gs)
	fmt.Printf("listening %s\n", ln.Addr())
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		gs.Stop()
	}()
	gs.Serve(ln)
	return 0
}

type target struct {
	name string
	addr string
	pid  int
}

type result struct {
	name       string
	n          int64
	errs       int64
	elapsed    time.Duration
	cpu        time.Duration
	p50, p99   time.Duration
	rps        float64
	cpuPerCall time.Duration
}

func run(args []string) int {
	fs := flag.NewFlagSet("kgbench", flag.ExitOnError)
	bin := fs.String("keygate", "bin/keygate", "keygate binary")
	dur := fs.Duration("duration", 4*time.Second, "measured time per run")
	warm := fs.Duration("warmup", time.Second, "warm-up before each run")
	conc := fs.Int("concurrency", 16, "concurrent requests in flight")
	conns := fs.Int("conns", 2, "gRPC connections (Envoy uses a few)")
	rounds := fs.Int("rounds", 6, "rounds of no-op and keygate, in alternating order")
	mode := fs.String("mode", "apikey", "what keygate checks: apikey (allow), deny (unknown key), jwt (allow, Authorization: Bearer)")
	alg := fs.String("alg", "RS256", "JWT algorithm for --mode jwt: HS256, RS256, ES256 or EdDSA")
	uncached := fs.Bool("uncached", false, "--mode jwt: start keygate with --jwt-cache-size 0, so every Check verifies the signature")
	scheme := fs.String("scheme", "rfc9421", "--mode hmac: rfc9421 or timestamp-body")
	bodySize := fs.Int("body", 1024, "--mode hmac: request body size in bytes (Envoy forwards it with the CheckRequest)")
	fs.Parse(args)

	dir, err := os.MkdirTemp("", "kgbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	self, _ := os.Executable()
	noopCmd, noopAddr, err := start(exec.Command(self, "noop"), "stdout", func(line string) (string, bool) {
		return strings.CutPrefix(line, "listening ")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "no-op server:", err)
		return 1
	}
	defer stop(noopCmd)

	kg := exec.Command(*bin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--log-level", "info",
		"--max-request-bytes", strconv.Itoa(max(4<<20, 2**bodySize)))
	if *uncached {
		kg.Args = append(kg.Args, "--jwt-cache-size", "0")
	}
	if os.Getenv("KGBENCH_KEYGATE_PPROF") != "" {
		kg.Args = append(kg.Args, "--pprof", "true") // the HTTP address is printed once keygate is up
	}
	addrs := map[string]string{}
	kgCmd, _, err := start(kg, "stderr", func(line string) (string, bool) {
		var l struct{ Msg, Listener, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil {
			if l.Msg == "listening" {
				addrs[l.Listener] = l.Addr
			}
			if l.Msg == "keygate ready" {
				return "", true
			}
		}
		return "", false
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "keygate:", err)
		return 1
	}
	defer stop(kgCmd)
	if os.Getenv("KGBENCH_KEYGATE_PPROF") != "" {
		fmt.Printf("keygate pprof: http://%s/debug/pprof/\n", addrs["http"])
	}

	ctx := context.Background()
	token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	api := admin.NewClient("http://"+addrs["admin"], strings.TrimSpace(string(token)), nil)
	key, err := seed(ctx, api)
	if err != nil {
		fmt.Fprintln(os.Stderr, "seeding keygate:", err)
		return 1
	}
	req := envoyRequest(key)
	var gen func() func() *wireRequest // per worker: the next request to send; nil: req every time
	switch *mode {
	case "apikey":
	case "deny":
		req = envoyRequest(credentials.GenerateAPIKey()) // well-formed, unknown: a full lookup, then 401
	case "jwt":
		tok, err := seedJWT(ctx, api, *alg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seeding the JWT issuer:", err)
			return 1
		}
		h := req.Attributes.Request.Http.Headers
		delete(h, "x-api-key")
		h["authorization"] = "Bearer " + tok
		label := *mode + " " + *alg
		if *uncached {
			label += " uncached"
		}
		*mode = label
	case "hmac":
		tmpl, err := seedHMAC(ctx, api, *scheme, *bodySize)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seeding the HMAC key:", err)
			return 1
		}
		gen = tmpl.signer
		*mode = fmt.Sprintf("hmac %s %d-byte body", *scheme, *bodySize)
	default:
		fmt.Fprintf(os.Stderr, "kgbench: unknown --mode %q\n", *mode)
		return 2
	}
	targets := []target{{"no-op", noopAddr, noopCmd.Process.Pid}, {"keygate", addrs["grpc"], kgCmd.Process.Pid}}

	fmt.Printf("kgbench: %d rounds × %s per server, %d in flight over %d connections, mode %s, GOMAXPROCS of servers = %d cores\n",
		*rounds, *dur, *conc, *conns, *mode, numCPU())
	var all [2][]result
	for r := 0; r < *rounds; r++ {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0} // ABBA: neither server always runs first
		}
		for _, i := range order {
			t := targets[i]
			res, err := load(ctx, t, req, gen, *mode, *conc, *conns, *warm, *dur)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", t.name, err)
				return 1
			}
			all[i] = append(all[i], res)
			fmt.Printf("  round %d %-8s %9.0f rps  p50 %7s  p99 %7s  server CPU %6.1f µs/Check  errors %d\n",
				r+1, t.name, res.rps, res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond),
				float64(res.cpuPerCall)/1e3, res.errs)
		}
	}
	noopR, kgR := best(all[0]), best(all[1])
	fmt.Printf("\n%-8s %10s %9s %9s %14s\n", "server", "rps", "p50", "p99", "CPU/Check")
	for _, r := range []result{noopR, kgR} {
		fmt.Printf("%-8s %10.0f %9s %9s %11.1f µs\n", r.name, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), float64(r.cpuPerCall)/1e3)
	}
	target := "(target ≥ 0.9), server CPU per Check %.3f (target ≤ 1.1)"
	switch {
	case strings.HasSuffix(*mode, "uncached"):
		target = "(no target: a signature per Check), server CPU per Check %.3f"
	case strings.HasPrefix(*mode, "jwt"), strings.HasPrefix(*mode, "hmac"):
		target = "(target ≥ 0.85), server CPU per Check %.3f"
	}
	fmt.Printf("\nratios keygate/no-op (median over rounds): RPS %.3f "+target+", p99 %.2f\n",
		median(all, func(n, k result) float64 { return k.rps / n.rps }),
		median(all, func(n, k result) float64 { return float64(k.cpuPerCall) / float64(n.cpuPerCall) }),
		median(all, func(n, k result) float64 { return float64(k.p99) / float64(n.p99) }))
	if kgR.errs > 0 || noopR.errs > 0 {
		fmt.Fprintln(os.Stderr, "kgbench: some Checks failed or were not the expected decision")
		return 1
	}
	return 0
}

// best returns the median-RPS result of the rounds (for the summary table).
func best(rs []result) result {
	s := append([]result(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].rps < s[j].rps })
	return s[len(s)/2]
}

func median(all [2][]result, f func(noop, kg result) float64) float64 {
	var v []float64
	for i := range all[0] {
		v = append(v, f(all[0][i], all[1][i]))
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func seed(ctx context.Context, api *admin.Client) (string, error) {
	if _, _, err := api.PutTenant(ctx, credentials.Tenant{Slug: "bench", DisplayName: "Bench"}); err != nil {
		return "", err
	}
	if _, _, err := api.PutClient(ctx, credentials.Client{ID: "cl_bench", Tenant: "bench", Name: "bench",
		Scopes: []string{"read:*", "write:projects"}, Roles: []string{"reader"}}); err != nil {
		return "", err
	}
	nk, _, err := api.CreateAPIKey(ctx, "cl_bench", credentials.APIKey{Name: "bench"})
	if err != nil {
		return "", err
	}
	return nk.Key, nil
}

// envoyRequest is a CheckRequest shaped like the ones Envoy sends.
func envoyRequest(key string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.1.5", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.2.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "8d4f6a10-0c1d-4bd1-9bb8-6a3c1c2f9e0a", Method: "GET", Path: "/v1/projects?page=2", Host: "api.example.com",
			Scheme: "https", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":method": "GET", ":path": "/v1/projects?page=2", ":authority": "api.example.com", ":scheme": "https",
				"x-request-id": "8d4f6a10-0c1d-4bd1-9bb8-6a3c1c2f9e0a", "user-agent": "curl/8.5.0", "accept": "*/*",
				"x-forwarded-proto": "https", "x-api-key": key,
			},
		}},
		ContextExtensions: map[string]string{"keygate.scopes": "read:projects", "keygate.methods": "apikey,jwt"},
	}}
}

const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

func load(ctx context.Context, t target, req *authv3.CheckRequest, gen func() func() *wireRequest, mode string, conc, nconn int, warm, dur time.Duration) (result, error) {
	var clients []*grpc.ClientConn
	for i := 0; i < nconn; i++ {
		cc, err := grpc.NewClient(t.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newLightCodec())))
		if err != nil {
			return result{}, err
		}
		defer cc.Close()
		clients = append(clients, cc)
	}
	wreq, err := encodeRequest(req)
	if err != nil {
		return result{}, err
	}
	wantOK := mode != "deny" || t.name == "no-op"
	// Warm up (connections, caches, goroutine pools), then measure.
	var measuring atomic.Bool
	var n, errs atomic.Int64
	lats := make([][]time.Duration, conc)
	deadline := time.Now().Add(warm + dur)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := clients[w%len(clients)]
			next := func() *wireRequest { return wreq }
			if gen != nil {
				next = gen()
			}
			buf := make([]time.Duration, 0, 1<<18)
			for {
				s := time.Now()
				if s.After(deadline) {
					break
				}
				var resp wireResponse
				err := c.Invoke(ctx, checkMethod, next(), &resp)
				d := time.Since(s)
				if measuring.Load() {
					if err != nil || (resp.code == 0) != wantOK {
						errs.Add(1)
					}
					n.Add(1)
					buf = append(buf, d)
				}
			}
			lats[w] = buf
		}(w)
	}
	time.Sleep(warm) // warm-up period of the load, not synchronisation
	cpu0 := procCPU(t.pid)
	t0 := time.Now()
	measuring.Store(true)
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := procCPU(t.pid) - cpu0
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := result{name: t.name, n: n.Load(), errs: errs.Load(), elapsed: elapsed, cpu: cpu}
	if len(all) == 0 {
		return r, fmt.Errorf("no request completed")
	}
	r.p50 = all[len(all)/2]
	r.p99 = all[len(all)*99/100]
	r.rps = float64(r.n) / elapsed.Seconds()
	r.cpuPerCall = cpu / time.Duration(r.n)
	return r, nil
}

// procCPU returns the user+system CPU time of process pid (all threads).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)        // field 14: utime
	st, _ := strconv.ParseInt(f[12], 10, 64)        // field 15: stime
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func numCPU() int {
	b, _ := os.ReadFile("/sys/fs/cgroup/cpu.max")
	if f := strings.Fields(string(b)); len(f) == 2 && f[0] != "max" {
		q, _ := strconv.Atoi(f[0])
		p, _ := strconv.Atoi(f[1])
		if p > 0 {
			return (q + p - 1) / p
		}
	}
	return runtimeNumCPU()
}

// start runs cmd and scans its stdout or stderr until match returns true;
// the rest of the stream is drained in the background.
func start(cmd *exec.Cmd, stream string, match func(string) (string, bool)) (*exec.Cmd, string, error) {
	var r io.ReadCloser
	var err error
	if stream == "stdout" {
		r, err = cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
	} else {
		r, err = cmd.StderrPipe()
	}
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := make(chan string, 1)
	go func() {
		ok := false
		for sc.Scan() {
			if !ok {
				if v, m := match(sc.Text()); m {
					ok = true
					found <- v
				}
			}
		}
		if !ok {
			close(found)
		}
	}()
	select {
	case v, ok := <-found:
		if !ok {
			cmd.Wait()
			return nil, "", fmt.Errorf("%s exited before it was ready", cmd.Path)
		}
		return cmd, v, nil
	case <-time.After(60 * time.Second):
		stop(cmd)
		return nil, "", fmt.Errorf("%s not ready within 60s", cmd.Path)
	}
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
	}
}
