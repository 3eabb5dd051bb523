package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/keygate/keygate/credentials/credentialstest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// keygateBin is the binary built once for the end-to-end tests.
var keygateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keygate-e2e-")
	if err != nil {
		panic(err)
	}
	keygateBin = filepath.Join(dir, "keygate")
	out, err := exec.Command("go", "build", "-o", keygateBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building keygate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is a running `keygate serve`.
type instance struct {
	cmd     *exec.Cmd
	dataDir string
	addrs   map[string]string          // grpc, http, admin, grpc-socket
	log     *credentialstest.LogBuffer // everything it wrote to stderr
	done    chan error
	msgs    chan string // log messages, for waitLog
	addrMu  *sync.Mutex
}

// logLine is the part of keygate's JSON log lines the tests look at.
type logLine struct {
	Level    string `json:"level"`
	Msg      string `json:"msg"`
	Listener string `json:"listener"`
	Addr     string `json:"addr"`
}

// startKeygate starts the binary on 127.0.0.1:0 ports with dataDir and
// waits (by reading its log, not by sleeping) until it says it is ready.
func startKeygate(t *testing.T, dataDir string, extra ...string) *instance {
	t.Helper()
	args := append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	return startCmd(t, exec.Command(keygateBin, args...), dataDir)
}

// startDefault starts `keygate serve` with no flags at all in dir, as
// `make run` does (default ports, ./data).
func startDefault(t *testing.T, dir string) *instance {
	t.Helper()
	cmd := exec.Command(keygateBin, "serve")
	cmd.Dir = dir
	return startCmd(t, cmd, filepath.Join(dir, "data"))
}

func startCmd(t *testing.T, cmd *exec.Cmd, dataDir string) *instance {
	t.Helper()
	return startUntil(t, cmd, dataDir, "keygate ready")
}

// startUntil starts cmd and returns once its log has said until. Every
// log message is also queued for waitLog.
func startUntil(t *testing.T, cmd *exec.Cmd, dataDir, until string) *instance {
	t.Helper()
	inst := &instance{cmd: cmd, dataDir: dataDir, addrs: map[string]string{}, log: &credentialstest.LogBuffer{},
		done: make(chan error, 1), msgs: make(chan string, 1<<16)}
	r, w := io.Pipe()
	inst.cmd.Stderr = w
	if err := inst.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := inst.cmd.Wait()
		w.Close()
		inst.done <- err
	}()
	var mu sync.Mutex
	inst.addrMu = &mu
	go func() {
		defer close(inst.msgs)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			inst.log.Write([]byte(line + "\n"))
			var l logLine
			if json.Unmarshal([]byte(line), &l) != nil {
				continue
			}
			if l.Msg == "listening" {
				mu.Lock()
				inst.addrs[l.Listener] = l.Addr
				mu.Unlock()
			}
			select {
			case inst.msgs <- l.Msg:
			default: // nobody waits for that many lines
			}
		}
	}()
	t.Cleanup(func() {
		if inst.cmd.ProcessState == nil {
			inst.cmd.Process.Kill()
			<-inst.done
		}
	})
	inst.waitLog(t, until)
	return inst
}

// waitLog reads keygate's log messages until one equals msg.
func (in *instance) waitLog(t *testing.T, msg string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-in.msgs:
			if !ok {
				t.Fatalf("keygate exited before logging %q; log:\n%s", msg, in.log.String())
			}
			if m == msg {
				return
			}
		case <-timeout:
			t.Fatalf("keygate did not log %q within 60s; log:\n%s", msg, in.log.String())
		}
	}
}

// addr returns the address keygate logged for a listener.
func (in *instance) addr(name string) string {
	in.addrMu.Lock()
	defer in.addrMu.Unlock()
	return in.addrs[name]
}

// stop sends SIGTERM and returns the exit error.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-in.done:
		return err
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
		t.Fatalf("keygate did not stop within 30s")
		return nil
	}
}

// cli runs a keygate admin command against the instance.
func (in *instance) cli(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(keygateBin, append(args, "--admin-url", "http://"+in.addrs["admin"], "--data-dir", in.dataDir)...)
	cmd.Env = append(os.Environ(), "KEYGATE_ADMIN_TOKEN=")
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return so.String(), se.String(), code
}

// mustCLI runs an admin command that must succeed.
func (in *instance) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := in.cli(t, "", args...)
	if code != 0 {
		t.Fatalf("keygate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (in *instance) authz(t *testing.T) authv3.AuthorizationClient {
	t.Helper()
	cc, err := grpc.NewClient(in.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return authv3.NewAuthorizationClient(cc)
}

// envoyCheck builds a CheckRequest shaped like Envoy's.
func envoyCheck(method, path string, headers map[string]string, ext map[string]string) *authv3.CheckRequest {
	h := map[string]string{":method": method, ":path": path, ":authority": "api.example.com", ":scheme": "https",
		"x-request-id": "7f1c2a44-9d7e-4f3a-8a55-3f1f0e6b8c21", "user-agent": "e2e/1.0"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.1.5", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40123}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: h["x-request-id"], Method: method, Path: path, Host: "api.example.com", Headers: h}},
		ContextExtensions: ext,
	}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// okHeaders returns the headers an allow sets, by name.
func okHeaders(resp *authv3.CheckResponse) map[string]string {
	m := map[string]string{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return m
}

func newAuthz(cc grpc.ClientConnInterface) authv3.AuthorizationClient {
	return authv3.NewAuthorizationClient(cc)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
