package proxies

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/credentials/credentialstest"
)

// Where Debian's packages put the proxies (scripts/install-debian-packages.sh).
const (
	nginxBin = "/usr/sbin/nginx"
	caddyBin = "/usr/bin/caddy"
)

// The addresses written in nginx.conf and Caddyfile, which the tests
// replace by the ones they listen on.
const (
	confProxyAddr   = "127.0.0.1:8000"
	confKeygateAddr = "127.0.0.1:9192"
	confAppAddr     = "127.0.0.1:8080"
)

// keygateBin is the keygate binary built once by TestMain.
var keygateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keygate-proxies-")
	if err != nil {
		panic(err)
	}
	keygateBin = filepath.Join(dir, "keygate")
	if out, err := exec.Command("go", "build", "-o", keygateBin, "../cmd/keygate").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building keygate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireBinary fails (never skips) the test when a program is missing.
func requireBinary(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v): run scripts/install-debian-packages.sh (make tools) to install nginx, caddy and curl", path, err)
	}
}

// world is the state the tests load into keygate, and the credentials
// they present.
type world struct {
	keys map[string]string // API keys by client name
	jwt  string            // an access token of the acme issuer
}

// newWorld returns the credentials of the tests and the snapshot that
// makes keygate know them.
func newWorld(t *testing.T) (*world, credentials.Snapshot) {
	t.Helper()
	w := &world{keys: map[string]string{}}
	var clients []credentials.SnapshotClient
	add := func(c credentials.Client) {
		k := credentials.GenerateAPIKey()
		w.keys[strings.TrimPrefix(c.ID, "cl_")] = k
		clients = append(clients, credentials.SnapshotClient{Client: c,
			APIKeys: &[]credentials.APIKey{{ID: "ak_" + strings.TrimPrefix(c.ID, "cl_"), Key: k}}})
	}
	add(credentials.Client{ID: "cl_acme", Tenant: "acme", Roles: []string{"read"}, Scopes: []string{"read:*"}})
	add(credentials.Client{ID: "cl_noscope", Tenant: "acme"})
	add(credentials.Client{ID: "cl_globex", Tenant: "globex", Scopes: []string{"read:projects"}})
	add(credentials.Client{ID: "cl_remote", Tenant: "acme", Scopes: []string{"read:*"}, AllowedCIDRs: []string{"10.0.1.5/32"}})
	add(credentials.Client{ID: "cl_local", Tenant: "acme", Scopes: []string{"read:*"}, AllowedCIDRs: []string{"127.0.0.1/32"}})
	add(credentials.Client{ID: "cl_limited", Tenant: "acme", Scopes: []string{"read:*"}, RateLimit: "1/hour"})

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "https://idp.example", "aud": "api",
		"sub": "user-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "read:projects"})
	tok.Header["kid"] = "idp-1"
	if w.jwt, err = tok.SignedString(priv); err != nil {
		t.Fatal(err)
	}
	return w, credentials.Snapshot{
		Tenants: []credentials.Tenant{{Slug: "acme"}, {Slug: "globex"}},
		Clients: clients,
		Issuers: []credentials.Issuer{{Tenant: "acme", Name: "idp", Issuer: "https://idp.example", Audiences: []string{"api"},
			Algorithms: []string{"EdDSA"},
			JWKS:       &credentials.JWKS{Keys: []credentials.JWK{{Kty: "OKP", Crv: "Ed25519", Kid: "idp-1", X: base64.RawURLEncoding.EncodeToString(pub)}}}}},
	}
}

// keygate is a running `keygate serve`.
type keygate struct {
	http, admin string // listener addresses
	log         *credentialstest.LogBuffer
}

const adminToken = "proxies-test-admin-token"

// startKeygate starts the binary on 127.0.0.1:0 ports, waits (by reading
// its log) until it is ready and loads snap through the admin API.
func startKeygate(t *testing.T, snap credentials.Snapshot) *keygate {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(keygateBin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--log-level", "debug")
	cmd.Env = append(os.Environ(), "KEYGATE_ADMIN_TOKEN="+adminToken)
	cmd.WaitDelay = 10 * time.Second
	r, w := io.Pipe()
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kg := &keygate{log: &credentialstest.LogBuffer{}}
	done := make(chan struct{})
	go func() { cmd.Wait(); w.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("keygate log:\n%s", kg.log.String())
		}
	})
	ready := make(chan struct{})
	var mu sync.Mutex
	addrs := map[string]string{}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		readyOnce := sync.OnceFunc(func() { close(ready) })
		for sc.Scan() {
			kg.log.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Listener, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			switch l.Msg {
			case "listening":
				mu.Lock()
				addrs[l.Listener] = l.Addr
				mu.Unlock()
			case "keygate ready":
				readyOnce()
			}
		}
		io.Copy(io.Discard, r)
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("keygate exited before it was ready:\n%s", kg.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("keygate not ready within 60s:\n%s", kg.log.String())
	}
	mu.Lock()
	kg.http, kg.admin = addrs["http"], addrs["admin"]
	mu.Unlock()

	body, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+kg.admin+"/v1/snapshot", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/snapshot: %s %s", resp.Status, out)
	}
	return kg
}

// seen is what the app got for one request.
type seen struct {
	method, target string
	header         http.Header
}

// app is the upstream: it records every request by its X-Test-Case
// header and answers 200 "app".
type app struct {
	addr string
	mu   sync.Mutex
	got  map[string][]seen
}

func startApp(t *testing.T) *app {
	t.Helper()
	a := &app{got: map[string][]seen{}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		id := r.Header.Get("X-Test-Case")
		a.got[id] = append(a.got[id], seen{r.Method, r.RequestURI, r.Header.Clone()})
		a.mu.Unlock()
		io.WriteString(w, "app")
	}))
	t.Cleanup(ts.Close)
	a.addr = ts.Listener.Addr().String()
	return a
}

// requests returns what the app got for the test case id.
func (a *app) requests(id string) []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[id]
}

// freePort returns a port that was free a moment ago (nginx cannot listen
// on port 0 and say which port it got; callers retry on a clash).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// render returns the config file src with the listen, keygate and app
// addresses replaced, failing if src does not mention one of them.
func render(t *testing.T, src, proxyAddr, keygateAddr, appAddr string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, a := range []string{confProxyAddr, confKeygateAddr, confAppAddr} {
		if !strings.Contains(s, a) {
			t.Fatalf("%s does not mention %s", src, a)
		}
	}
	return strings.NewReplacer(confProxyAddr, proxyAddr, confKeygateAddr, keygateAddr, confAppAddr, appAddr).Replace(s)
}

// proxy is a running nginx or Caddy.
type proxy struct {
	addr string
	log  *credentialstest.LogBuffer
}

// startProxy starts the command that mk returns for a free address and
// waits until that address answers HTTP; when the process exits first
// because the port was taken meanwhile, it tries another port.
func startProxy(t *testing.T, name string, mk func(addr string) *exec.Cmd) *proxy {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := freePort(t)
		cmd := mk(addr)
		p := &proxy{addr: addr, log: &credentialstest.LogBuffer{}}
		cmd.Stdout, cmd.Stderr = p.log, p.log
		// Its own process group, so that stopping it also stops nginx's
		// workers (which would otherwise keep running, and keep the log
		// pipe open).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", name, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if waitHTTP(addr, exited, 30*time.Second) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("%s log:\n%s", name, p.log.String())
				}
			})
			return p
		}
		stop()
		if attempt < 5 && strings.Contains(p.log.String(), "address already in use") {
			continue
		}
		t.Fatalf("%s did not answer on %s:\n%s", name, addr, p.log.String())
	}
}

// waitHTTP polls addr until it answers an HTTP request, the process exits
// or the deadline passes.
func waitHTTP(addr string, exited <-chan struct{}, within time.Duration) bool {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if resp, err := c.Get("http://" + addr + "/__ready"); err == nil {
			resp.Body.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
	return false
}

// startNginx runs proxies/nginx.conf unprivileged in a temporary prefix.
func startNginx(t *testing.T, keygateAddr, appAddr string) *proxy {
	t.Helper()
	requireBinary(t, nginxBin)
	dir := t.TempDir()
	for _, d := range []string{"tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return startProxy(t, "nginx", func(addr string) *exec.Cmd {
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(render(t, "nginx.conf", addr, keygateAddr, appAddr)), 0o644); err != nil {
			t.Fatal(err)
		}
		global := "daemon off; pid " + filepath.Join(dir, "nginx.pid") + "; error_log stderr warn;"
		if os.Geteuid() == 0 {
			global += " user root;" // workers keep access to the temporary prefix
		}
		return exec.Command(nginxBin, "-e", "stderr", "-p", dir, "-c", conf, "-g", global)
	})
}

// startCaddy runs proxies/Caddyfile with its state in a temporary home.
func startCaddy(t *testing.T, keygateAddr, appAddr string) *proxy {
	t.Helper()
	requireBinary(t, caddyBin)
	dir := t.TempDir()
	return startProxy(t, "caddy", func(addr string) *exec.Cmd {
		conf := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(conf, []byte(render(t, "Caddyfile", addr, keygateAddr, appAddr)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "run", "--config", conf, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		return cmd
	})
}

// answer is what curl got.
type answer struct {
	status int
	header http.Header
	body   string
}

// curl sends one request with the curl binary (as a client would) and
// parses the response.
func curl(t *testing.T, url string, args ...string) answer {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is missing: run scripts/install-debian-packages.sh (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-sS", "-i", "--http1.1", "--path-as-is"}, append(args, url)...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\n%s", url, err, errb.String())
	}
	resp, err := http.ReadResponse(bufio.NewReader(&out), nil)
	if err != nil {
		t.Fatalf("curl %s: unreadable response: %v\n%s", url, err, out.String())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{resp.StatusCode, resp.Header, string(b)}
}
