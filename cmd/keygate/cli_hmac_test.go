package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate/keygate/credentials"
)

var secretLineRE = regexp.MustCompile(`(?m)^secret: ([A-Za-z0-9+/]+=*)$`)

// newSecret returns the bytes of the secret printed by `hmac create`
// (standard base64), failing unless they are 32.
func decodePrintedSecret(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		t.Fatalf("printed secret %q: %d bytes, %v", s, len(b), err)
	}
	return b
}

// writeBytes writes data to a new file in the test's temp dir.
func writeBytes(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHMACCLI drives `keygate hmac` against the real binary: create
// (secret printed once), import (file, stdin, base64), list, get,
// disable, enable, rotate, delete, and the refusals; no listing, record
// or log line ever holds a secret.
func TestHMACCLI(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	kg := startKeygate(t, dataDir)
	kg.mustCLI(t, "tenant", "create", "acme-corp")
	kg.mustCLI(t, "client", "create", "--tenant", "acme-corp", "--id", "cl_svc", "--scopes", "read:*")
	kg.mustCLI(t, "client", "create", "--tenant", "acme-corp", "--id", "cl_other")
	var secrets []string // base64 and raw
	var shown []string   // every output that must not hold a secret

	// create: the secret once on stdout, how to use it on stderr.
	out, errOut, code := kg.cli(t, "", "hmac", "create", "--client", "cl_svc", "--id", "hk_one", "--name", "signer", "--scopes", "read:projects", "--expires-in", "30d")
	if code != 0 {
		t.Fatalf("hmac create: %d %s %s", code, out, errOut)
	}
	m := secretLineRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("hmac create printed no secret line:\n%s", out)
	}
	one := decodePrintedSecret(t, m[1])
	secrets = append(secrets, m[1], string(one))
	if strings.Count(out, m[1]) != 1 {
		t.Errorf("the secret is printed more than once:\n%s", out)
	}
	for _, w := range []string{"ID", "SCHEME", "hk_one", "cl_svc", "signer", "rfc9421", "read:projects"} {
		if !strings.Contains(out, w) {
			t.Errorf("hmac create output lacks %q:\n%s", w, out)
		}
	}
	for _, w := range []string{"cannot show it again", "keygate sign --key-id hk_one", "--base64", `keyid="hk_one"`} {
		if !strings.Contains(errOut, w) {
			t.Errorf("hmac create stderr lacks %q:\n%s", w, errOut)
		}
	}
	if strings.Contains(errOut, m[1]) {
		t.Error("the secret is repeated on stderr")
	}

	// -q prints only the secret; -o json has it as "secret".
	q := kg.mustCLI(t, "hmac", "create", "--client", "cl_svc", "--id", "hk_quiet", "-q")
	if strings.Count(q, "\n") != 1 {
		t.Fatalf("hmac create -q printed more than the secret:\n%s", q)
	}
	secrets = append(secrets, strings.TrimSpace(q), string(decodePrintedSecret(t, q)))
	js := kg.mustCLI(t, "hmac", "create", "--client", "cl_svc", "--id", "hk_json", "--scheme", "timestamp-body", "-o", "json")
	var created struct {
		ID, ClientID, Scheme, Secret string
		Revision                     uint64
	}
	if err := json.Unmarshal([]byte(js), &created); err != nil {
		t.Fatalf("hmac create -o json: %v\n%s", err, js)
	}
	var raw map[string]any
	json.Unmarshal([]byte(js), &raw)
	if created.ID != "hk_json" || raw["client_id"] != "cl_svc" || raw["scheme"] != "timestamp-body" || created.Revision == 0 {
		t.Errorf("hmac create -o json = %s", js)
	}
	secrets = append(secrets, created.Secret, string(decodePrintedSecret(t, created.Secret)))

	// import from a file of raw bytes, from stdin as base64.
	rawSecret := make([]byte, 40)
	rand.Read(rawSecret)
	b64Secret := base64.StdEncoding.EncodeToString(rawSecret)
	secrets = append(secrets, string(rawSecret), b64Secret)
	out = kg.mustCLI(t, "hmac", "import", "--client", "cl_other", "--id", "hk_imported", "--secret-file", writeBytes(t, "raw.secret", rawSecret), "--name", "from-django")
	shown = append(shown, out)
	if !strings.Contains(out, "hk_imported") || !strings.Contains(out, "from-django") {
		t.Errorf("hmac import output:\n%s", out)
	}
	stdinSecret := make([]byte, 32)
	rand.Read(stdinSecret)
	secrets = append(secrets, string(stdinSecret), base64.StdEncoding.EncodeToString(stdinSecret))
	out, errOut, code = kg.cli(t, base64.StdEncoding.EncodeToString(stdinSecret)+"\n", "hmac", "import", "--client", "cl_other", "--id", "hk_stdin", "--secret-file", "-", "--base64", "-o", "json")
	if code != 0 || !strings.Contains(out, `"id": "hk_stdin"`) {
		t.Fatalf("hmac import from stdin: %d %s %s", code, out, errOut)
	}
	shown = append(shown, out, errOut)

	// Refusals: a short secret (THREATS: 400 naming the field), a
	// missing --secret-file, a bad scheme, no base64.
	short := []byte("only-31-bytes-of-shared-secret!")
	secrets = append(secrets, string(short))
	out, errOut, code = kg.cli(t, "", "hmac", "import", "--client", "cl_svc", "--id", "hk_short", "--secret-file", writeBytes(t, "short", short))
	if code != 1 || !strings.Contains(errOut, "400 invalid") || !strings.Contains(errOut, "field secret") || !strings.Contains(errOut, "31 bytes") {
		t.Errorf("short secret: exit %d\n%s%s", code, out, errOut)
	}
	shown = append(shown, out, errOut)
	kg.cliFails(t, "", 2, []string{"--secret-file is required"}, "hmac", "import", "--client", "cl_svc")
	kg.cliFails(t, "", 2, []string{"--scheme must be rfc9421 or timestamp-body"}, "hmac", "create", "--client", "cl_svc", "--scheme", "sha1")
	kg.cliFails(t, "", 2, []string{"--client is required"}, "hmac", "create")
	kg.cliFails(t, "not base64 at all!", 1, []string{"not standard base64"}, "hmac", "import", "--client", "cl_svc", "--secret-file", "-", "--base64")
	kg.cliFails(t, "", 1, []string{"404 not_found"}, "hmac", "create", "--client", "cl_nobody")
	kg.cliFails(t, "", 1, []string{"409 conflict"}, "hmac", "create", "--client", "cl_svc", "--id", "hk_one")
	// A text secret saved with a newline: imported as it is, with a warning.
	text := "a-django-style-shared-secret-of-40-chars\n"
	secrets = append(secrets, strings.TrimSpace(text))
	_, errOut, code = kg.cli(t, text, "hmac", "import", "--client", "cl_svc", "--id", "hk_text", "--secret-file", "-")
	if code != 0 || !strings.Contains(errOut, "ends with a newline") {
		t.Errorf("text secret with a newline: exit %d, stderr %s", code, errOut)
	}
	shown = append(shown, errOut)

	// list, get: tables and JSON without secrets.
	list := kg.mustCLI(t, "hmac", "list")
	shown = append(shown, list)
	header := strings.Fields(strings.SplitN(list, "\n", 2)[0])
	if strings.Join(header, " ") != "ID CLIENT NAME SCHEME SCOPES EXPIRES DISABLED" {
		t.Errorf("hmac list header %q", header)
	}
	for _, id := range []string{"hk_one", "hk_quiet", "hk_json", "hk_imported", "hk_stdin", "hk_text"} {
		if !strings.Contains(list, id) {
			t.Errorf("hmac list lacks %s:\n%s", id, list)
		}
	}
	mine := kg.mustCLI(t, "hmac", "list", "--client", "cl_other", "-o", "json")
	shown = append(shown, mine)
	var ks []map[string]any
	if err := json.Unmarshal([]byte(mine), &ks); err != nil || len(ks) != 2 || ks[0]["id"] != "hk_imported" || ks[1]["id"] != "hk_stdin" {
		t.Errorf("hmac list --client cl_other -o json = %s (%v)", mine, err)
	}
	get := kg.mustCLI(t, "hmac", "get", "hk_one")
	shown = append(shown, get, kg.mustCLI(t, "hmac", "get", "hk_json", "-o", "json"))
	if !strings.Contains(get, "hk_one") || !strings.Contains(get, "signer") || !strings.Contains(get, "read:projects") {
		t.Errorf("hmac get:\n%s", get)
	}
	kg.cliFails(t, "", 1, []string{"404 not_found"}, "hmac", "get", "hk_nobody")

	// disable, enable: read-modify-write that keeps the secret.
	out = kg.mustCLI(t, "hmac", "disable", "hk_one", "-o", "json")
	shown = append(shown, out)
	if !strings.Contains(out, `"disabled": true`) {
		t.Errorf("hmac disable -o json:\n%s", out)
	}
	if g := kg.mustCLI(t, "hmac", "get", "hk_one"); !regexp.MustCompile(`hk_one\s.*\syes\n`).MatchString(g) {
		t.Errorf("hmac get after disable:\n%s", g)
	}
	out = kg.mustCLI(t, "hmac", "enable", "hk_one")
	shown = append(shown, out)
	if !regexp.MustCompile(`hk_one\s.*\sno\n`).MatchString(out) {
		t.Errorf("hmac enable:\n%s", out)
	}
	out = kg.mustCLI(t, "hmac", "update", "hk_one", "--name", "renamed")
	shown = append(shown, out)
	if !strings.Contains(out, "renamed") || !strings.Contains(out, "read:projects") {
		t.Errorf("hmac update:\n%s", out)
	}

	// rotate: same ID, a new secret printed once.
	rot := kg.mustCLI(t, "hmac", "rotate", "hk_one", "-q")
	if strings.TrimSpace(rot) == m[1] {
		t.Fatal("hmac rotate printed the old secret")
	}
	secrets = append(secrets, strings.TrimSpace(rot), string(decodePrintedSecret(t, rot)))

	// delete.
	out = kg.mustCLI(t, "hmac", "delete", "hk_quiet")
	if !strings.Contains(out, "deleted hmac key hk_quiet") {
		t.Errorf("hmac delete: %s", out)
	}
	kg.cliFails(t, "", 1, []string{"404 not_found"}, "hmac", "get", "hk_quiet")
	kg.cliFails(t, "", 1, []string{"404 not_found"}, "hmac", "delete", "hk_quiet")

	st := kg.mustCLI(t, "status")
	if !regexp.MustCompile(`hmackeys\s+5\s+5`).MatchString(st) {
		t.Errorf("status lacks 5 HMAC keys:\n%s", st)
	}
	shown = append(shown, st, kg.mustCLI(t, "hmac", "list", "-o", "json"))

	if err := kg.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	logs := kg.log.String()
	for _, s := range secrets {
		for _, o := range shown {
			if strings.Contains(o, s) {
				t.Errorf("a secret (%d chars) is printed where it must not be:\n%s", len(s), o)
			}
		}
		if strings.Contains(logs, s) {
			t.Errorf("the log holds a secret (%d chars)", len(s))
		}
	}
}

// TestHMACHelp: `keygate --help` and the hmac help name the commands.
func TestHMACHelp(t *testing.T) {
	var stdout, stderr strings.Builder
	env := func(string) string { return "" }
	if code := Main(t.Context(), []string{"--help"}, env, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, w := range []string{"keygate hmac    create|import|list|get|rotate|update|disable|enable|delete", "keygate sign --key-id", "keygate rotate-master-key"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("keygate --help lacks %q:\n%s", w, stdout.String())
		}
	}
	stdout.Reset()
	if code := Main(t.Context(), []string{"hmac", "--help"}, env, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("hmac --help: exit %d", code)
	}
	for _, w := range []string{"create", "import", "list", "get", "rotate", "disable", "enable", "delete", "printed once"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("keygate hmac --help lacks %q:\n%s", w, stdout.String())
		}
	}
	for cmd, want := range map[string][]string{
		"hmac import":       {"--secret-file", "--base64", "never from the command line"},
		"hmac create":       {"--scheme", "--expires-at", "-q"},
		"rotate-master-key": {"--old-key-file", "--new-key-file", "--data-dir", "stop keygate first"},
	} {
		stdout.Reset()
		if code := Main(t.Context(), append(strings.Fields(cmd), "--help"), env, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		for _, w := range want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("keygate %s --help lacks %q:\n%s", cmd, w, stdout.String())
			}
		}
	}
}

// run runs the keygate binary with args and returns its output and exit
// code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(keygateBin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return so.String(), se.String(), code
}

// TestRotateMasterKeyCLI: a store with an HMAC key and an HS256 issuer
// is re-encrypted offline under a new master key; keygate then starts
// with the new key (both secrets still work) and refuses the old one.
func TestRotateMasterKeyCLI(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	rand.Read(oldKey)
	rand.Read(newKey)
	oldFile := writeBytes(t, "old.key", []byte(base64.StdEncoding.EncodeToString(oldKey)+"\n")) // base64
	newFile := writeBytes(t, "new.key", newKey)                                                 // raw bytes

	kg := startKeygate(t, dataDir, "--master-key-file", oldFile)
	kg.mustCLI(t, "tenant", "create", "acme-corp")
	kg.mustCLI(t, "client", "create", "--tenant", "acme-corp", "--id", "cl_svc")
	secret := kg.mustCLI(t, "hmac", "create", "--client", "cl_svc", "--id", "hk_rot", "--name", "survivor", "-q")
	hs := []byte("django-insecure-" + strings.Repeat("k", 40))
	kg.mustCLI(t, "issuer", "put", "acme-corp/django", "-f", writeTemp(t, "django.yaml",
		fmt.Sprintf("algorithms: [HS256]\njwks: {keys: [{kty: oct, kid: d1, k: %s}]}\n", rawURL.EncodeToString(hs))))
	tok := signJWT(t, hs, "d1", jwt.MapClaims{"sub": "user-1", "exp": time.Now().Add(10 * time.Minute).Unix()})
	if code, _ := bearerCheck(t, kg.authz(t), tok); code != "" {
		t.Fatalf("HS256 token before the rotation: %s", code)
	}

	// While keygate runs, the store is locked: refused, nothing changed.
	_, errOut, code := run(t, "rotate-master-key", "--data-dir", dataDir, "--old-key-file", oldFile, "--new-key-file", newFile, "--lock-timeout", "200ms")
	if code != 1 || !strings.Contains(errOut, "stop keygate") {
		t.Fatalf("rotation of a running store: exit %d\n%s", code, errOut)
	}
	if err := kg.stop(t); err != nil {
		t.Fatal(err)
	}

	// Usage errors and a wrong old key change nothing.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--data-dir", dataDir, "--new-key-file", newFile}, 2, "--old-key-file and --new-key-file are required"},
		{[]string{"--data-dir", dataDir, "--old-key-file", oldFile, "--new-key-file", oldFile}, 2, "the same"},
		{[]string{"--data-dir", dataDir, "--old-key-file", oldFile, "--new-key-file", filepath.Join(dir, "missing.key")}, 1, "--new-key-file"},
		{[]string{"--data-dir", dataDir, "--old-key-file", writeBytes(t, "short.key", []byte("short")), "--new-key-file", newFile}, 1, "want 32 bytes"},
		{[]string{"--data-dir", dataDir, "--old-key-file", writeBytes(t, "other.key", bytes.Repeat([]byte{7}, 32)), "--new-key-file", newFile}, 1, "does not match"},
		{[]string{"--data-dir", filepath.Join(dir, "nowhere"), "--old-key-file", oldFile, "--new-key-file", newFile}, 1, "keygate.db"},
	} {
		_, errOut, code := run(t, append([]string{"rotate-master-key"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("rotate-master-key %v: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, errOut)
		}
	}

	out, errOut, code := run(t, "rotate-master-key", "--data-dir", dataDir, "--old-key-file", oldFile, "--new-key-file", newFile)
	if code != 0 {
		t.Fatalf("rotate-master-key: exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range []string{"re-encrypted 2 secret(s)", "--master-key-file " + newFile} {
		if !strings.Contains(out, w) {
			t.Errorf("rotate-master-key output lacks %q:\n%s", w, out)
		}
	}
	// The old key no longer opens the store.
	served, err := exec.Command(keygateBin, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--data-dir", dataDir, "--master-key-file", oldFile).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(served), "the master key does not match") {
		t.Fatalf("serve with the old key: %v\n%s", err, served)
	}
	// A second rotation from the old key is refused too.
	if _, errOut, code := run(t, "rotate-master-key", "--data-dir", dataDir, "--old-key-file", oldFile, "--new-key-file", writeBytes(t, "third.key", bytes.Repeat([]byte{9}, 32))); code != 1 || !strings.Contains(errOut, "does not match") {
		t.Errorf("rotation from the old key after the rotation: exit %d\n%s", code, errOut)
	}

	// The new key opens it; the HMAC key and the HS256 secret are intact.
	kg = startKeygate(t, dataDir, "--master-key-file", newFile)
	get := kg.mustCLI(t, "hmac", "get", "hk_rot")
	if !strings.Contains(get, "hk_rot") || !strings.Contains(get, "survivor") || strings.Contains(get, strings.TrimSpace(secret)) {
		t.Fatalf("hmac get after the rotation:\n%s", get)
	}
	if code, _ := bearerCheck(t, kg.authz(t), tok); code != "" {
		t.Fatalf("HS256 token after the rotation: %s", code)
	}
	if code, _ := signedCheck(t, kg.authz(t), "GET", "/v1/projects", "", "--key-id", "hk_rot", "--secret-file", writeBytes(t, "hk_rot.b64", []byte(secret)), "--base64"); code != "" {
		t.Fatalf("HMAC-signed request after the rotation: %s", code)
	}
	if err := kg.stop(t); err != nil {
		t.Fatal(err)
	}
	if l := kg.log.String(); strings.Contains(l, strings.TrimSpace(secret)) || strings.Contains(l, string(hs)) {
		t.Error("the log holds a secret")
	}
}

// signFixture is a fixed secret in a raw and a base64 file.
type signFixture struct {
	secret           []byte
	rawFile, b64File string
}

func newSignFixture(t *testing.T) signFixture {
	t.Helper()
	secret := []byte("keygate-sign-test-secret-32bytes!!") // 34 bytes, printable
	return signFixture{secret: secret, rawFile: writeBytes(t, "secret.raw", secret),
		b64File: writeBytes(t, "secret.b64", []byte(base64.StdEncoding.EncodeToString(secret)+"\n"))}
}

// mustRun runs the binary and fails unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("keygate %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestSignRFC9421: `keygate sign` with --created and --nonce none prints
// exactly what credentials.SignRFC9421 computes, in every output form.
func TestSignRFC9421(t *testing.T) {
	f := newSignFixture(t)
	const created = 1700000000
	body := `{"project":"apollo","n":1}`
	m := &credentials.HTTPMessage{Method: "POST", Authority: "api.example.com", Path: "/v1/projects?team=core&x=1", Scheme: "https"}
	want, err := credentials.SignRFC9421(m, []byte(body), "hk_datasync1", f.secret, time.Unix(created, 0), "")
	if err != nil {
		t.Fatal(err)
	}
	wantLines := "Content-Digest: " + want["content-digest"] + "\nSignature-Input: " + want["signature-input"] + "\nSignature: " + want["signature"] + "\n"
	args := []string{"sign", "--key-id", "hk_datasync1", "--secret-file", f.rawFile, "--created", "1700000000", "--nonce", "none",
		"POST", "https://api.example.com/v1/projects?team=core&x=1", body}
	out := mustRun(t, args...)
	if out != wantLines {
		t.Fatalf("keygate sign printed\n%s\nwant\n%s", out, wantLines)
	}
	if again := mustRun(t, args...); again != out {
		t.Errorf("not deterministic:\n%s\n%s", out, again)
	}
	for _, w := range []string{`("@method" "@authority" "@path" "@query" "content-digest")`, `created=1700000000`, `keyid="hk_datasync1"`, `alg="hmac-sha256"`} {
		if !strings.Contains(out, w) {
			t.Errorf("Signature-Input lacks %s:\n%s", w, out)
		}
	}
	if strings.Contains(out, "nonce") {
		t.Errorf("--nonce none printed a nonce:\n%s", out)
	}
	// The base64 secret file, a body from a file and from stdin sign the same.
	bodyFile := writeBytes(t, "body.json", []byte(body))
	for _, a := range [][]string{
		{"--secret-file", f.b64File, "--base64", "POST", "https://api.example.com/v1/projects?team=core&x=1", body},
		{"--secret-file", f.rawFile, "POST", "https://api.example.com/v1/projects?team=core&x=1", "@" + bodyFile},
	} {
		if got := mustRun(t, append([]string{"sign", "--key-id", "hk_datasync1", "--created", "1700000000", "--nonce", "none"}, a...)...); got != wantLines {
			t.Errorf("keygate sign %v:\n%s", a, got)
		}
	}
	cmd := exec.Command(keygateBin, "sign", "--key-id", "hk_datasync1", "--secret-file", f.rawFile, "--created", "1700000000", "--nonce", "none",
		"POST", "https://api.example.com/v1/projects?team=core&x=1", "@-")
	cmd.Stdin = strings.NewReader(body)
	if got, err := cmd.Output(); err != nil || string(got) != wantLines {
		t.Errorf("body from stdin: %v\n%s", err, got)
	}
	// -o json is the header map.
	js := mustRun(t, append(args[:len(args)-3:len(args)-3], "-o", "json", "POST", "https://api.example.com/v1/projects?team=core&x=1", body)...)
	var got map[string]string
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("-o json: %v\n%s", err, js)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-o json (-want +got):\n%s", diff)
	}
	// --curl: a command line with the headers, the body and the URL.
	c := mustRun(t, append(args[:len(args)-3:len(args)-3], "--curl", "--header", "Content-Type: application/json", "POST", "https://api.example.com/v1/projects?team=core&x=1", body)...)
	wantCurl := "curl -sS -X POST -H 'Content-Type: application/json' -H 'Content-Digest: " + want["content-digest"] + "' -H 'Signature-Input: " +
		want["signature-input"] + "' -H 'Signature: " + want["signature"] + "' --data-raw '" + body + "' 'https://api.example.com/v1/projects?team=core&x=1'\n"
	if c != wantCurl {
		t.Errorf("--curl printed\n%s\nwant\n%s", c, wantCurl)
	}
	// A GET without a body or query covers neither content-digest nor @query.
	get := mustRun(t, "sign", "--key-id", "hk_datasync1", "--secret-file", f.rawFile, "--created", "1700000000", "--nonce", "n-123", "GET", "http://localhost:8080/healthz")
	wantGet, err := credentials.SignRFC9421(&credentials.HTTPMessage{Method: "GET", Authority: "localhost:8080", Path: "/healthz", Scheme: "http"}, nil, "hk_datasync1", f.secret, time.Unix(created, 0), "n-123")
	if err != nil {
		t.Fatal(err)
	}
	if get != "Signature-Input: "+wantGet["signature-input"]+"\nSignature: "+wantGet["signature"]+"\n" || !strings.Contains(get, `nonce="n-123"`) {
		t.Errorf("GET:\n%s\nwant %v", get, wantGet)
	}
	// --nonce auto (the default) differs from run to run.
	a1 := mustRun(t, "sign", "--key-id", "hk_x", "--secret-file", f.rawFile, "--created", "1700000000", "GET", "https://api.example.com/")
	a2 := mustRun(t, "sign", "--key-id", "hk_x", "--secret-file", f.rawFile, "--created", "1700000000", "GET", "https://api.example.com/")
	if a1 == a2 || !strings.Contains(a1, "nonce=") {
		t.Errorf("--nonce auto:\n%s\n%s", a1, a2)
	}
	for _, o := range []string{out, js, c, get, a1} {
		if strings.Contains(o, string(f.secret)) || strings.Contains(o, base64.StdEncoding.EncodeToString(f.secret)) {
			t.Errorf("keygate sign printed the secret:\n%s", o)
		}
	}
}

// TestSignTimestampBody: the legacy scheme matches Python's standard
// library: hmac.new(secret, f"{ts}.{body}".encode(), hashlib.sha256).
func TestSignTimestampBody(t *testing.T) {
	f := newSignFixture(t)
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Skip("no /usr/bin/python3")
	}
	for _, body := range []string{`{"event":"invoice.paid","amount":4200}`, "", "ünïcødé body\nwith a newline"} {
		args := []string{"sign", "--scheme", "timestamp-body", "--secret-file", f.rawFile, "--created", "1700000123", "--tenant", "acme-corp",
			"POST", "https://api.example.com/webhooks"}
		if body != "" {
			args = append(args, body)
		}
		out := mustRun(t, args...)
		pyOut, err := exec.Command(py, "-c", `import hmac,hashlib,sys
secret = bytes.fromhex(sys.argv[1]); ts = sys.argv[2]; body = sys.argv[3]
print(hmac.new(secret, f"{ts}.{body}".encode(), hashlib.sha256).hexdigest())`, fmt.Sprintf("%x", f.secret), "1700000123", body).Output()
		if err != nil {
			t.Fatalf("python3: %v", err)
		}
		want := "X-Timestamp: 1700000123\nX-Signature: " + strings.TrimSpace(string(pyOut)) + "\nX-Tenant-ID: acme-corp\n"
		if out != want {
			t.Errorf("body %q: keygate sign printed\n%s\nPython computes\n%s", body, out, want)
		}
		if got := credentials.LegacySign(f.secret, "1700000123", []byte(body)); !strings.Contains(out, got) {
			t.Errorf("body %q: LegacySign gives %s", body, got)
		}
	}
	js := mustRun(t, "sign", "--scheme", "timestamp-body", "--secret-file", f.b64File, "--base64", "--created", "1700000123", "-o", "json", "POST", "https://api.example.com/webhooks", "x")
	var got map[string]string
	if err := json.Unmarshal([]byte(js), &got); err != nil || got["x-timestamp"] != "1700000123" || got["x-signature"] != credentials.LegacySign(f.secret, "1700000123", []byte("x")) || len(got) != 2 {
		t.Errorf("-o json: %s (%v)", js, err)
	}
}

// TestSignUsage: usage errors exit 2 and name the problem.
func TestSignUsage(t *testing.T) {
	f := newSignFixture(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--secret-file", f.rawFile, "GET", "https://a.example/"}, "--key-id is required"},
		{[]string{"--key-id", "hk_a", "GET", "https://a.example/"}, "--secret-file is required"},
		{[]string{"--key-id", "hk_a", "--secret-file", f.rawFile, "GET"}, "want METHOD URL"},
		{[]string{"--key-id", "hk_a", "--secret-file", f.rawFile, "GET", "/relative"}, "absolute http(s) URL"},
		{[]string{"--key-id", "hk_a", "--secret-file", f.rawFile, "--scheme", "sha1", "GET", "https://a.example/"}, "--scheme must be"},
		{[]string{"--key-id", "hk_a", "--secret-file", f.rawFile, "--tenant", "acme", "GET", "https://a.example/"}, "--tenant is for --scheme timestamp-body"},
		{[]string{"--key-id", "hk_a", "--secret-file", f.rawFile, "--header", "Host: evil", "GET", "https://a.example/"}, "set by keygate sign"},
		{[]string{"--key-id", "hk_a", "--secret-file", "-", "POST", "https://a.example/", "@-"}, "cannot both come from stdin"},
	} {
		_, errOut, code := run(t, append([]string{"sign"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("keygate sign %v: exit %d, want 2 with %q:\n%s", c.args, code, c.want, errOut)
		}
	}
	if _, errOut, code := run(t, "sign", "--key-id", "hk_a", "--secret-file", filepath.Join(t.TempDir(), "missing"), "GET", "https://a.example/"); code != 1 || !strings.Contains(errOut, "missing") {
		t.Errorf("missing secret file: exit %d\n%s", code, errOut)
	}
	if out := mustRun(t, "sign", "--help"); !strings.Contains(out, "--secret-file") || !strings.Contains(out, "timestamp-body") {
		t.Errorf("sign --help:\n%s", out)
	}
}

// signedCheck signs a request with `keygate sign` (extra flags in flags)
// and sends it to keygate as Envoy would, body included. It returns the
// deny code ("" for an allow) and the allow headers.
func signedCheck(t *testing.T, az authv3.AuthorizationClient, method, path, body string, flags ...string) (string, map[string]string) {
	t.Helper()
	args := append([]string{"sign", "-o", "json"}, flags...)
	args = append(args, method, "https://api.example.com"+path)
	if body != "" {
		args = append(args, body)
	}
	var hs map[string]string
	if err := json.Unmarshal([]byte(mustRun(t, args...)), &hs); err != nil {
		t.Fatal(err)
	}
	req := envoyCheck(method, path, hs, nil)
	if body != "" {
		req.Attributes.Request.Http.Body = body
		req.Attributes.Request.Http.Size = int64(len(body))
	}
	resp, err := az.Check(ctxT(t), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus().GetCode() == 0 {
		return "", okHeaders(resp)
	}
	var deny struct{ Code string }
	json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &deny)
	if deny.Code == "" {
		t.Fatalf("deny without a code: %v", resp)
	}
	return deny.Code, nil
}

// TestHMACSignedCheck: a key made with `keygate hmac create` signs, with
// `keygate sign`, requests that keygate allows; disable, delete and
// rotate take effect at once, for both schemes.
func TestHMACSignedCheck(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	kg := startKeygate(t, dataDir)
	az := kg.authz(t)
	kg.mustCLI(t, "tenant", "create", "acme-corp")
	kg.mustCLI(t, "client", "create", "--tenant", "acme-corp", "--id", "cl_svc", "--scopes", "read:*")
	secret := kg.mustCLI(t, "hmac", "create", "--client", "cl_svc", "--id", "hk_e2e", "-q")
	file := writeBytes(t, "hk_e2e.b64", []byte(secret))
	rfc := []string{"--key-id", "hk_e2e", "--secret-file", file, "--base64"}

	code, hdr := signedCheck(t, az, "POST", "/v1/projects?team=core", `{"name":"apollo"}`, rfc...)
	if code != "" || hdr["x-auth-key-id"] != "hk_e2e" || hdr["x-auth-method"] != "hmac" || hdr["x-tenant-id"] != "acme-corp" || hdr["x-auth-client-id"] != "cl_svc" {
		t.Fatalf("signed POST: deny %q, headers %v", code, hdr)
	}
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", rfc...); code != "" {
		t.Fatalf("signed GET: %s", code)
	}
	// The same signature twice (fixed created and nonce) is a replay.
	fixed := append([]string{"--created", fmt.Sprint(time.Now().Unix()), "--nonce", "once-only"}, rfc...)
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", fixed...); code != "" {
		t.Fatalf("first use: %s", code)
	}
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", fixed...); code != "invalid_signature" {
		t.Errorf("replay: %q", code)
	}
	// A stale created is refused.
	stale := append([]string{"--created", fmt.Sprint(time.Now().Add(-10 * time.Minute).Unix())}, rfc...)
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", stale...); code != "invalid_signature" {
		t.Errorf("stale: %q", code)
	}
	kg.mustCLI(t, "hmac", "disable", "hk_e2e")
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", rfc...); code != "invalid_signature" {
		t.Errorf("disabled key: %q", code)
	}
	kg.mustCLI(t, "hmac", "enable", "hk_e2e") // the secret survived the read-modify-writes
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", rfc...); code != "" {
		t.Errorf("re-enabled key: %q", code)
	}
	rotated := kg.mustCLI(t, "hmac", "rotate", "hk_e2e", "-q")
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", rfc...); code != "invalid_signature" {
		t.Errorf("old secret after rotate: %q", code)
	}
	rotFile := writeBytes(t, "rotated.b64", []byte(rotated))
	if code, _ := signedCheck(t, az, "GET", "/v1/projects", "", "--key-id", "hk_e2e", "--secret-file", rotFile, "--base64"); code != "" {
		t.Errorf("rotated secret: %q", code)
	}

	// The legacy scheme: an imported raw secret, chosen by X-Tenant-ID.
	raw := []byte("legacy-webhook-secret-0123456789abcdef")
	rawFile := writeBytes(t, "legacy.raw", raw)
	kg.mustCLI(t, "hmac", "import", "--client", "cl_svc", "--id", "hk_legacy", "--scheme", "timestamp-body", "--secret-file", rawFile)
	legacy := []string{"--scheme", "timestamp-body", "--secret-file", rawFile, "--tenant", "acme-corp"}
	code, hdr = signedCheck(t, az, "POST", "/webhooks", `{"event":"invoice.paid"}`, legacy...)
	if code != "" || hdr["x-auth-key-id"] != "hk_legacy" {
		t.Fatalf("legacy POST: deny %q, headers %v", code, hdr)
	}
	kg.mustCLI(t, "hmac", "delete", "hk_legacy")
	if code, _ := signedCheck(t, az, "POST", "/webhooks", `{"event":"invoice.paid"}`, legacy...); code != "invalid_signature" {
		t.Errorf("deleted legacy key: %q", code)
	}
	if err := kg.stop(t); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{strings.TrimSpace(secret), strings.TrimSpace(rotated), string(raw)} {
		if strings.Contains(kg.log.String(), s) {
			t.Error("the log holds an HMAC secret")
		}
	}
}
