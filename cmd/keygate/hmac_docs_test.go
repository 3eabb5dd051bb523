package main

// The tests of docs/hmac.md. The blocks of the page that they use carry a
// title in the info string of their fence, the way MkDocs and Docusaurus
// write it (GitHub shows the block as usual and hides the title):
//
//	```go title="sign-rfc9421.go"
//
//   - sign-{rfc9421,legacy}.go, sign_{rfc9421,legacy}.py and
//     sign-{rfc9421,legacy}.sh are the signing programs. Each is written to
//     a temporary directory (without go.mod) under its title and run as the
//     page tells readers to: `go run TITLE`, /usr/bin/python3 TITLE, bash
//     TITLE, with METHOD URL [BODY] as arguments and HMAC_SECRET plus
//     HMAC_KEY_ID (RFC 9421) or HMAC_TENANT (legacy) in the environment. A
//     missing go, python3, bash, openssl or curl fails the test; nothing is
//     skipped.
//   - known-answer-{rfc9421,legacy}.txt are the lines that the sh block right
//     before each prints. Those sh blocks run in one bash session with
//     `keygate` on PATH, as written and again with the Python and then the
//     bash program in place of `go run`. signature-base.txt is the base of
//     the known answer's request, checked against credentials.SignatureBase.
//   - envoy-filter.yaml and envoy-route.yaml are Envoy configuration.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3" // resolves the Router typed_config
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/keygate/keygate/credentials"
)

// hmacDocBlock is a fenced block of docs/hmac.md.
type hmacDocBlock struct {
	lang, title, body string
	prev              *hmacDocBlock // the fenced block before it
}

var hmacFenceTitle = regexp.MustCompile(`\btitle="([^"]+)"`)

// hmacDocBlocks returns the titled blocks of docs/hmac.md by title.
func hmacDocBlocks(t *testing.T) map[string]*hmacDocBlock {
	t.Helper()
	doc, err := os.ReadFile("../../docs/hmac.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*hmacDocBlock{}
	var prev *hmacDocBlock
	lines := strings.Split(string(doc), "\n")
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(lines[i], "```")
		if !ok || info == "" {
			continue
		}
		b := &hmacDocBlock{lang: strings.Fields(info)[0], prev: prev}
		if m := hmacFenceTitle.FindStringSubmatch(info); m != nil {
			b.title = m[1]
		}
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		b.body = strings.Join(body, "\n") + "\n"
		if b.title != "" {
			if out[b.title] != nil {
				t.Fatalf("docs/hmac.md has two blocks titled %q", b.title)
			}
			out[b.title] = b
		}
		prev = b
	}
	want := []string{"envoy-filter.yaml", "envoy-route.yaml", "known-answer-legacy.txt", "known-answer-rfc9421.txt",
		"sign-legacy.go", "sign-legacy.sh", "sign-rfc9421.go", "sign-rfc9421.sh", "sign_legacy.py", "sign_rfc9421.py",
		"signature-base.txt"}
	var got []string
	for title := range out {
		got = append(got, title)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("docs/hmac.md: titled blocks %q, want %q", got, want)
	}
	return out
}

// hmacExample is one signing program of docs/hmac.md.
type hmacExample struct {
	title  string
	lang   string // go, python, bash
	scheme string // credentials.SchemeRFC9421 or SchemeTimestampBody
}

var hmacExamples = []hmacExample{
	{"sign-rfc9421.go", "go", credentials.SchemeRFC9421},
	{"sign-legacy.go", "go", credentials.SchemeTimestampBody},
	{"sign_rfc9421.py", "python", credentials.SchemeRFC9421},
	{"sign_legacy.py", "python", credentials.SchemeTimestampBody},
	{"sign-rfc9421.sh", "bash", credentials.SchemeRFC9421},
	{"sign-legacy.sh", "bash", credentials.SchemeTimestampBody},
}

// hmacExampleTool returns the interpreter of a language; a missing one fails
// the test.
func hmacExampleTool(t *testing.T, lang string) string {
	t.Helper()
	name := map[string]string{"go": "go", "python": debianPython, "bash": "bash"}[lang]
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to run the %s examples of docs/hmac.md: %v", name, lang, err)
	}
	if lang == "bash" {
		for _, tool := range []string{"openssl", "curl", "od"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s is needed by the bash examples of docs/hmac.md", tool)
			}
		}
	}
	return p
}

// writeHMACExamples writes every signing program into a new directory.
func writeHMACExamples(t *testing.T, blocks map[string]*hmacDocBlock) string {
	t.Helper()
	dir := t.TempDir()
	for _, e := range hmacExamples {
		if err := os.WriteFile(filepath.Join(dir, e.title), []byte(blocks[e.title].body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hmacEnv is the test's environment without the examples' variables.
func hmacEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HMAC_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// run runs the example in dir as the page says, and returns its stdout.
func (e hmacExample) run(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	var cmd *exec.Cmd
	if e.lang == "go" {
		cmd = exec.Command(hmacExampleTool(t, e.lang), append([]string{"run", e.title}, args...)...)
		env = append(slices.Clone(env), "GOFLAGS=", "GOWORK=off") // outside any module, as a reader runs it
	} else {
		cmd = exec.Command(hmacExampleTool(t, e.lang), append([]string{e.title}, args...)...)
	}
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", e.title, args, err, out, stderr.String())
	}
	return string(out)
}

// signedOutput is what a signing program printed: the headers in order and,
// for the bash programs, the curl command line.
type signedOutput struct {
	headers [][2]string
	curl    string
}

func parseSignedOutput(t *testing.T, out string) signedOutput {
	t.Helper()
	var p signedOutput
	for l := range strings.Lines(out) {
		l = strings.TrimSuffix(l, "\n")
		if strings.HasPrefix(l, "curl ") {
			p.curl = l
			break // what follows is curl's own output
		}
		name, value, ok := strings.Cut(l, ": ")
		if !ok || name == "" {
			t.Fatalf("line %q is not 'Name: value'; output:\n%s", l, out)
		}
		p.headers = append(p.headers, [2]string{name, value})
	}
	if len(p.headers) == 0 {
		t.Fatalf("no headers printed:\n%s", out)
	}
	return p
}

// envoyRequest is an HTTP request as Envoy's ext_authz filter sees it.
type envoyRequest struct {
	method, target, authority, scheme string // target: path and query
	headers                           [][2]string
	body                              []byte
}

// signedRequestFor is the request a program's output signs, sent to rawURL.
func signedRequestFor(t *testing.T, method, rawURL string, headers [][2]string, body []byte) envoyRequest {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return envoyRequest{method: method, target: u.RequestURI(), authority: u.Host, scheme: u.Scheme, headers: headers, body: body}
}

// checkRequest is the CheckRequest Envoy sends for r on a route set up as
// docs/hmac.md says: the body whole in raw_body, keygate.methods: hmac.
func (r envoyRequest) checkRequest(reqID string) *authv3.CheckRequest {
	h := map[string]string{":method": r.method, ":path": r.target, ":authority": r.authority, ":scheme": r.scheme,
		"x-request-id": reqID, "user-agent": "hmac-docs-test/1.0", "x-forwarded-proto": r.scheme}
	for _, kv := range r.headers {
		name := strings.ToLower(kv[0])
		if v, ok := h[name]; ok {
			h[name] = v + "," + kv[1] // Envoy joins repeated headers
		} else {
			h[name] = kv[1]
		}
	}
	size := int64(-1)
	if len(r.body) > 0 {
		size = int64(len(r.body))
		h["content-length"] = strconv.Itoa(len(r.body))
		h["x-envoy-auth-partial-body"] = "false"
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.1.5", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40123}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: reqID, Method: r.method, Path: r.target, Host: r.authority, Scheme: r.scheme, Protocol: "HTTP/1.1",
			Headers: h, RawBody: r.body, Size: size}},
		ContextExtensions: map[string]string{"keygate.methods": "hmac"},
	}}
}

// withBody returns a copy of r with another body (the headers as signed).
func (r envoyRequest) withBody(b []byte) envoyRequest {
	r.body = b
	return r
}

// header returns the value of a header of r.
func (r envoyRequest) header(name string) string {
	for _, kv := range r.headers {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

// signedDecision is one Check and its decision log line.
type signedDecision struct {
	resp *authv3.CheckResponse
	log  map[string]any
}

// checkSigned sends r to keygate and returns the answer with its log line.
func (in *instance) checkSigned(t *testing.T, az authv3.AuthorizationClient, r envoyRequest) signedDecision {
	t.Helper()
	id := fmt.Sprintf("hmac-docs-%d", time.Now().UnixNano())
	resp, err := az.Check(ctxT(t), r.checkRequest(id))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return signedDecision{resp: resp, log: in.signedDecisionLog(t, id)}
}

// signedDecisionLog returns keygate's log line of request id. It re-reads the
// log each time the instance logs a line (no polling, no sleeping).
func (in *instance) signedDecisionLog(t *testing.T, id string) map[string]any {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		for l := range strings.Lines(in.log.String()) {
			if !strings.Contains(l, id) {
				continue
			}
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["request_id"] == id {
				return m
			}
		}
		select {
		case _, ok := <-in.msgs:
			if !ok {
				t.Fatalf("keygate exited; log:\n%s", in.log.String())
			}
		case <-timeout:
			t.Fatalf("no decision log line for %s; log:\n%s", id, in.log.String())
		}
	}
}

// wantAllow asserts an allow as keyID of tenant.
func (d signedDecision) wantAllow(t *testing.T, what, keyID, tenant string) {
	t.Helper()
	if d.resp.GetStatus().GetCode() != 0 {
		base := ""
		if b, ok := d.log["signature_base"].(string); ok {
			base = "\nsignature_base (--log-level debug):\n" + b
		}
		t.Fatalf("%s: denied (%s), want allow; reason: %v%s", what, d.resp.GetDeniedResponse().GetBody(), d.log["reason"], base)
	}
	h := okHeaders(d.resp)
	for k, want := range map[string]string{"x-auth-key-id": keyID, "x-tenant-id": tenant, "x-auth-method": "hmac"} {
		if h[k] != want {
			t.Errorf("%s: %s = %q, want %q", what, k, h[k], want)
		}
	}
	rm := d.resp.GetOkResponse().GetHeadersToRemove()
	for _, name := range []string{"signature", "signature-input", "x-signature", "x-timestamp"} {
		if !slices.Contains(rm, name) {
			t.Errorf("%s: %s is not removed upstream (headers_to_remove %q)", what, name, rm)
		}
	}
}

// wantDeny asserts a 401 invalid_signature whose logged reason contains
// reason.
func (d signedDecision) wantDeny(t *testing.T, what, reason string) {
	t.Helper()
	if code := denyCode(d.resp); code != "invalid_signature" {
		t.Fatalf("%s: got %v %s, want invalid_signature", what, d.resp.GetStatus(), d.resp.GetDeniedResponse().GetBody())
	}
	if r, _ := d.log["reason"].(string); !strings.Contains(r, reason) {
		t.Errorf("%s: denied because %q, want a reason with %q", what, r, reason)
	}
}

// curlCapture is an HTTP server that records the requests curl sends.
type curlCapture struct {
	srv  *httptest.Server
	reqs chan envoyRequest
}

func newCurlCapture(t *testing.T) *curlCapture {
	c := &curlCapture{reqs: make(chan envoyRequest, 4)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sr := envoyRequest{method: r.Method, target: r.RequestURI, authority: r.Host, scheme: "http", body: body}
		for name, vs := range r.Header {
			for _, v := range vs {
				sr.headers = append(sr.headers, [2]string{name, v})
			}
		}
		c.reqs <- sr
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// received returns the request the server got, and checks that it carries
// the headers and the body the program printed and was given.
func (c *curlCapture) received(t *testing.T, p signedOutput, body []byte) envoyRequest {
	t.Helper()
	var r envoyRequest
	select {
	case r = <-c.reqs:
	case <-time.After(10 * time.Second):
		t.Fatal("curl sent no request")
	}
	for _, kv := range p.headers {
		if got := r.header(kv[0]); got != kv[1] {
			t.Errorf("curl sent %s: %q, the script printed %q", kv[0], got, kv[1])
		}
	}
	if !bytes.Equal(r.body, body) {
		t.Errorf("curl sent the body %q, want %q", r.body, body)
	}
	return r
}

// runCurl runs a printed curl command line with bash, as a reader pastes it.
func runCurl(t *testing.T, line string) {
	t.Helper()
	cmd := exec.Command(hmacExampleTool(t, "bash"), "-c", line)
	cmd.Env = hmacEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
}

// hmacDocsKey is an HMAC key of the test's store.
type hmacDocsKey struct {
	id, tenant, secret string // secret: standard base64
}

// TestHMACDocsExamples runs every signing program of docs/hmac.md against
// a real keygate with keys applied through `keygate apply -f`: a signed
// POST with a body (and query) and a signed GET are allowed as the right
// key and tenant; the same headers again are a replay; a body changed by
// one byte is denied. The bash programs' curl commands are run against a
// local server, and what curl sent is what is checked. Then what the page
// says about the debug log and about restarts is checked too.
func TestHMACDocsExamples(t *testing.T) {
	blocks := hmacDocBlocks(t)
	dir := writeHMACExamples(t, blocks)

	// One tenant per language, so that the legacy programs (whose bodiless
	// GETs sign only the timestamp) never replay each other.
	keys := map[string]hmacDocsKey{} // by example title
	var state strings.Builder
	state.WriteString("tenants:\n")
	for _, lang := range []string{"go", "python", "bash"} {
		fmt.Fprintf(&state, "  - slug: docs-%s\n", lang)
	}
	state.WriteString("clients:\n")
	for _, lang := range []string{"go", "python", "bash"} {
		fmt.Fprintf(&state, "  - id: cl_docs_%s\n    tenant: docs-%s\n    scopes: [\"write:projects\"]\n    hmackeys:\n", lang, lang)
		for _, e := range hmacExamples {
			if e.lang != lang {
				continue
			}
			b := make([]byte, 32)
			rand.Read(b)
			k := hmacDocsKey{id: "hk_docs_" + lang + "_" + strings.ReplaceAll(e.scheme, "-", "_"), tenant: "docs-" + lang,
				secret: base64.StdEncoding.EncodeToString(b)}
			keys[e.title] = k
			fmt.Fprintf(&state, "      - {id: %s, secret: %q, scheme: %s}\n", k.id, k.secret, e.scheme)
		}
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	kg := startKeygate(t, dataDir, "--log-level", "debug")
	kg.applyState(t, state.String())
	az := kg.authz(t)
	srv := newCurlCapture(t)

	body := []byte("{\"name\": \"apollo\", \"note\": \"it's ünïcode\"}\n")
	changed := slices.Clone(body)
	changed[len(changed)-2] = ']' // one byte
	const api = "https://api.example.com"
	signed := map[string][2]envoyRequest{} // by title: the POST and the GET, as allowed
	var signatures []string
	for _, e := range hmacExamples {
		t.Run(e.title, func(t *testing.T) {
			k := keys[e.title]
			env := hmacEnv("HMAC_SECRET=" + k.secret)
			if e.scheme == credentials.SchemeRFC9421 {
				env = append(env, "HMAC_KEY_ID="+k.id)
			} else {
				env = append(env, "HMAC_TENANT="+k.tenant)
			}
			base := api
			if e.lang == "bash" {
				base = srv.srv.URL // the request curl sends is the one checked
			}

			// POST with a query and a body.
			postURL := base + "/v1/projects?team=core&page=2"
			p := parseSignedOutput(t, e.run(t, dir, env, "POST", postURL, string(body)))
			post := signedRequestFor(t, "POST", postURL, p.headers, body)
			if e.lang == "bash" {
				if p.curl == "" {
					t.Fatal("the script printed no curl command")
				}
				runCurl(t, p.curl)
				post = srv.received(t, p, body)
			}
			kg.checkSigned(t, az, post).wantAllow(t, "POST", k.id, k.tenant)
			kg.checkSigned(t, az, post).wantDeny(t, "POST again", "replay")
			if e.scheme == credentials.SchemeRFC9421 {
				kg.checkSigned(t, az, post.withBody(changed)).wantDeny(t, "POST with a changed body", "content-digest does not match")
			} else {
				kg.checkSigned(t, az, post.withBody(changed)).wantDeny(t, "POST with a changed body", "signature does not match")
			}

			// GET without a body or a query; the bash program sends it itself.
			getURL := base + "/v1/projects"
			if e.lang == "bash" {
				env = append(env, "HMAC_SEND=1")
			}
			p = parseSignedOutput(t, e.run(t, dir, env, "GET", getURL))
			get := signedRequestFor(t, "GET", getURL, p.headers, nil)
			if e.lang == "bash" {
				get = srv.received(t, p, nil)
			}
			kg.checkSigned(t, az, get).wantAllow(t, "GET", k.id, k.tenant)
			kg.checkSigned(t, az, get).wantDeny(t, "GET again", "replay")
			signed[e.title] = [2]envoyRequest{post, get}
			signatures = append(signatures, post.header("signature"), post.header("x-signature"), get.header("signature"), get.header("x-signature"))
		})
	}
	if t.Failed() {
		return
	}

	// The debug log shows the signature base of a signature that does not
	// match, and never a secret or a signature.
	post := signed["sign-rfc9421.go"][0]
	forged := post
	forged.headers = slices.Clone(post.headers)
	for i, kv := range forged.headers {
		if strings.EqualFold(kv[0], "signature") {
			forged.headers[i][1] = "sig1=:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ":"
		}
	}
	d := kg.checkSigned(t, az, forged)
	d.wantDeny(t, "a wrong signature", "signature does not match")
	wantBase := `"@method": POST` + "\n" + `"@authority": api.example.com` + "\n" + `"@path": /v1/projects` + "\n" +
		`"@query": ?team=core&page=2` + "\n" + `"content-digest": ` + post.header("content-digest") + "\n" +
		`"@signature-params": ` + strings.TrimPrefix(post.header("signature-input"), "sig1=")
	if got, _ := d.log["signature_base"].(string); got != wantBase {
		t.Errorf("--log-level debug: signature_base is\n%s\nwant\n%s", got, wantBase)
	}
	log := kg.log.String()
	for _, k := range keys {
		if strings.Contains(log, k.secret) {
			t.Errorf("the log holds the secret of %s", k.id)
		}
	}
	for _, s := range signatures {
		if _, b64, ok := strings.Cut(s, "=:"); ok {
			s = strings.TrimSuffix(b64, ":") // RFC 9421: the base64 bytes
		}
		if s != "" && strings.Contains(log, s) {
			t.Errorf("the log holds a signature (%s)", s)
		}
	}

	// "The replay cache is in the memory of each keygate process": after a
	// restart a captured request passes once more within its window.
	if err := kg.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	kg = startKeygate(t, dataDir, "--log-level", "debug")
	az = kg.authz(t)
	k := keys["sign-rfc9421.go"]
	kg.checkSigned(t, az, post).wantAllow(t, "after a restart, a captured RFC 9421 POST", k.id, k.tenant)
	kg.checkSigned(t, az, post).wantDeny(t, "after a restart, the same POST again", "replay")
	// RFC 9421 binds the path; the legacy scheme does not: a captured
	// bodiless GET passes as a DELETE of another path.
	get := signed["sign-rfc9421.go"][1]
	get.method, get.target = "DELETE", "/v1/projects/42"
	kg.checkSigned(t, az, get).wantDeny(t, "an RFC 9421 GET replayed as a DELETE", "signature does not match")
	k = keys["sign-legacy.go"]
	get = signed["sign-legacy.go"][1]
	get.method, get.target = "DELETE", "/v1/projects/42"
	kg.checkSigned(t, az, get).wantAllow(t, "after a restart, a legacy GET replayed as a DELETE", k.id, k.tenant)
	kg.checkSigned(t, az, signed["sign-legacy.go"][1]).wantDeny(t, "the legacy GET itself, after it", "replay")
}

// The fixed inputs of the known answers in docs/hmac.md.
const (
	kaSecret = "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1jbGllbnQtMDEyMzQ1Njc4OQ=="
	kaMethod = "POST"
	kaURL    = "https://api.example.com/v1/projects?team=core"
	kaBody   = `{"name":"apollo"}`
)

// TestHMACDocsKnownAnswer runs the sh blocks before the known answers of
// docs/hmac.md as a reader does (one bash session, `keygate` on PATH), with
// the Go programs and then with the Python and bash ones in their place,
// and compares what they print with the page. It also checks the page's
// signature base against keygate's own RFC 9421 code.
func TestHMACDocsKnownAnswer(t *testing.T) {
	blocks := hmacDocBlocks(t)
	dir := writeHMACExamples(t, blocks)
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(keygateBin, filepath.Join(bin, "keygate")); err != nil {
		t.Fatal(err)
	}
	answers := []string{"known-answer-rfc9421.txt", "known-answer-legacy.txt"}
	commands := [][3]string{ // go, python, bash
		{"go run sign-rfc9421.go", debianPython + " sign_rfc9421.py", "bash sign-rfc9421.sh"},
		{"go run sign-legacy.go", debianPython + " sign_legacy.py", "bash sign-legacy.sh"},
	}
	for i, lang := range []string{"go", "python", "bash"} {
		hmacExampleTool(t, lang)
		var script strings.Builder
		script.WriteString("set -euo pipefail\n")
		for _, a := range answers {
			sh := blocks[a].prev
			if sh == nil || sh.lang != "sh" {
				t.Fatalf("docs/hmac.md: the block before %s is not an sh block", a)
			}
			body, n := sh.body, 0
			for _, cmds := range commands {
				n += strings.Count(body, cmds[0])
				body = strings.ReplaceAll(body, cmds[0], cmds[i])
			}
			if n != 1 {
				t.Fatalf("docs/hmac.md: the sh block before %s runs %d signing programs, want 1:\n%s", a, n, sh.body)
			}
			fmt.Fprintf(&script, "%s\necho '@@block-end@@'\n", body)
		}
		cmd := exec.Command("bash", "-c", script.String())
		cmd.Dir = dir
		cmd.Env = hmacEnv("PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "GOFLAGS=", "GOWORK=off")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: the known-answer blocks failed: %v\nstdout:\n%s\nstderr:\n%s", lang, err, stdout.String(), stderr.String())
		}
		outputs := strings.Split(stdout.String(), "@@block-end@@\n")
		for j, a := range answers {
			var got []string
			for l := range strings.Lines(outputs[j]) {
				if !strings.HasPrefix(l, "curl ") { // the bash programs' command line
					got = append(got, l)
				}
			}
			// The program, then keygate sign: the same lines twice.
			if want := strings.Repeat(blocks[a].body, 2); strings.Join(got, "") != want {
				t.Errorf("%s: the block before %s printed\n%s\nthe page shows (twice, program and keygate sign)\n%s",
					lang, a, strings.Join(got, ""), blocks[a].body)
			}
		}
	}

	// The signature base on the page is keygate's, and its HMAC is the
	// known answer's Signature.
	ka := map[string]string{}
	for l := range strings.Lines(blocks["known-answer-rfc9421.txt"].body) {
		name, value, _ := strings.Cut(strings.TrimSuffix(l, "\n"), ": ")
		ka[strings.ToLower(name)] = value
	}
	if want := credentials.ContentDigestSHA256([]byte(kaBody)); ka["content-digest"] != want {
		t.Errorf("known answer: Content-Digest %q, want %q for the body %s", ka["content-digest"], want, kaBody)
	}
	params, err := credentials.ParseSignatureInput(ka["signature-input"])
	if err != nil || len(params) != 1 {
		t.Fatalf("known answer: Signature-Input: %v", err)
	}
	u, _ := url.Parse(kaURL)
	msg := &credentials.HTTPMessage{Method: kaMethod, Authority: u.Host, Path: u.RequestURI(), Scheme: u.Scheme,
		Header: func(name string) []string {
			if v, ok := ka[name]; ok {
				return []string{v}
			}
			return nil
		}}
	base, err := credentials.SignatureBase(msg, &params[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(blocks["signature-base.txt"].body, "\n"); string(base) != want {
		t.Errorf("docs/hmac.md signature base:\n%s\nkeygate computes:\n%s", want, base)
	}
	secret, _ := base64.StdEncoding.DecodeString(kaSecret)
	mac := hmac.New(sha256.New, secret)
	mac.Write(base)
	if want := "sig1=:" + base64.StdEncoding.EncodeToString(mac.Sum(nil)) + ":"; ka["signature"] != want {
		t.Errorf("known answer: Signature %q, want %q", ka["signature"], want)
	}
	for _, s := range []string{kaSecret, kaURL, "'" + kaBody + "'"} {
		if !strings.Contains(blocks[answers[0]].prev.body, s) {
			t.Errorf("the sh block before %s does not use %s", answers[0], s)
		}
	}
}

// TestHMACDocsEnvoy decodes the Envoy configuration of docs/hmac.md into
// go-control-plane's types, validates it, and checks what the page asks
// for: fail closed, no retried Checks, and the body (whole, as bytes) on
// every route that accepts hmac.
func TestHMACDocsEnvoy(t *testing.T) {
	blocks := hmacDocBlocks(t)
	decode := func(title string, v any) {
		t.Helper()
		js, err := yaml.YAMLToJSON([]byte(blocks[title].body))
		if err != nil {
			t.Fatalf("%s: %v", title, err)
		}
		if err := json.Unmarshal(js, v); err != nil {
			t.Fatalf("%s: %v", title, err)
		}
	}
	message := func(what string, raw json.RawMessage, m proto.Message) {
		t.Helper()
		if err := protojson.Unmarshal(raw, m); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := m.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	typed := func(what string, a *anypb.Any) proto.Message {
		t.Helper()
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := m.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return m
	}

	var filters struct {
		HTTPFilters []json.RawMessage `json:"http_filters"`
	}
	decode("envoy-filter.yaml", &filters)
	var ext *extauthzv3.ExtAuthz
	for _, raw := range filters.HTTPFilters {
		var f hcmv3.HttpFilter
		message("envoy-filter.yaml", raw, &f)
		if m, ok := typed("envoy-filter.yaml: "+f.GetName(), f.GetTypedConfig()).(*extauthzv3.ExtAuthz); ok {
			ext = m
		}
	}
	switch {
	case ext == nil:
		t.Fatal("envoy-filter.yaml has no ext_authz filter")
	case ext.GetFailureModeAllow():
		t.Error("envoy-filter.yaml: failure_mode_allow is true")
	case ext.GetGrpcService().GetRetryPolicy() != nil:
		t.Error("envoy-filter.yaml: the grpc_service retries Checks (a retried Check is a replay)")
	}

	var doc struct {
		RouteConfig json.RawMessage `json:"route_config"`
	}
	decode("envoy-route.yaml", &doc)
	var rc routev3.RouteConfiguration
	message("envoy-route.yaml", doc.RouteConfig, &rc)
	perRoute := func(what string, cfg map[string]*anypb.Any) *extauthzv3.ExtAuthzPerRoute {
		a := cfg["envoy.filters.http.ext_authz"]
		if a == nil {
			return nil
		}
		m, ok := typed(what, a).(*extauthzv3.ExtAuthzPerRoute)
		if !ok {
			t.Fatalf("%s: envoy.filters.http.ext_authz is a %T", what, m)
		}
		return m
	}
	hmacRoutes := 0
	for _, vh := range rc.GetVirtualHosts() {
		host := perRoute("envoy-route.yaml: host "+vh.GetName(), vh.GetTypedPerFilterConfig())
		for _, r := range vh.GetRoutes() {
			what := "envoy-route.yaml: route " + r.GetMatch().String()
			route := perRoute(what, r.GetTypedPerFilterConfig())
			// The route's context_extensions merged over the host's; keygate's
			// --default-methods (apikey,hmac,jwt) when neither names methods.
			methods := "apikey,hmac,jwt"
			for _, pr := range []*extauthzv3.ExtAuthzPerRoute{host, route} {
				if m, ok := pr.GetCheckSettings().GetContextExtensions()["keygate.methods"]; ok {
					methods = m
				}
			}
			if !slices.Contains(strings.Split(methods, ","), "hmac") {
				continue
			}
			hmacRoutes++
			b := ext.GetWithRequestBody()
			if rb := route.GetCheckSettings().GetWithRequestBody(); rb != nil {
				b = rb
			}
			if b.GetMaxRequestBytes() == 0 || b.GetAllowPartialMessage() || !b.GetPackAsBytes() {
				t.Errorf("%s accepts hmac with with_request_body %v; want max_request_bytes, allow_partial_message false, pack_as_bytes true", what, b)
			}
		}
	}
	if hmacRoutes == 0 {
		t.Error("envoy-route.yaml has no route that accepts hmac")
	}
}
