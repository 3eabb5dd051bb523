package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestVersionFromLdflags builds keygate as `make build`, `make release` and
// the Dockerfile do (-trimpath, -ldflags "-s -w -X main.version=…") and
// checks that `keygate version` prints the injected version.
func TestVersionFromLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "keygate")
	const v = "v9.8.7-test+abc"
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+v, "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil {
			t.Fatalf("keygate %s: %v\n%s", arg, err, out)
		}
		if !regexp.MustCompile(`^keygate ` + regexp.QuoteMeta(v) + ` \(go1\.\d+`).Match(out) {
			t.Errorf("keygate %s printed %q, want keygate %s (go1.…)", arg, out, v)
		}
	}
	// Without -X the version says it is a development build.
	out, err := exec.Command(keygateBin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "keygate dev") {
		t.Errorf("keygate version without ldflags: %q, %v; want keygate dev", out, err)
	}
}

// TestDockerfile checks the Dockerfile by its text (there is no Docker engine
// in CI): the builder's Go is go.mod's major.minor, the binary is static
// with the version injected, and the final stage is distroless, non-root.
func TestDockerfile(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dockerfile, gomod, ignore := read("Dockerfile"), read("go.mod"), read(".dockerignore")

	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)(\.\d+)?$`).FindStringSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	var froms []string
	for _, line := range strings.Split(dockerfile, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			froms = append(froms, strings.Join(f[1:], " "))
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, have FROM %q", froms)
	}
	builder := regexp.MustCompile(`^golang:(\d+\.\d+)(\.\d+)?(-\S+)?( AS \S+)?$`).FindStringSubmatch(froms[0])
	if builder == nil {
		t.Fatalf("first stage %q is not golang:<version>", froms[0])
	}
	if builder[1] != goLine[1] {
		t.Errorf("builder golang:%s, but go.mod says go %s", builder[1], goLine[1])
	}
	if final := froms[len(froms)-1]; final != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage is %q, want gcr.io/distroless/static-debian12:nonroot", final)
	}
	final := dockerfile[strings.LastIndex(dockerfile, "\nFROM "):]
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", `-X main.version=${VERSION}`, "ARG VERSION",
	} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("the Dockerfile has no %s", want)
		}
	}
	for _, want := range []string{
		"\nUSER 65532", "\nEXPOSE 9191 9192\n", `ENTRYPOINT ["/keygate"]`, `CMD ["serve", "--data-dir", "/var/lib/keygate"]`,
	} {
		if !strings.Contains(final, want) {
			t.Errorf("the final stage has no %q", strings.TrimSpace(want))
		}
	}
	// Nothing secret or bulky in the build context: the operator's secret
	// files live under k8s/*/secrets.
	for _, want := range []string{".git", "k8s", "data", "dist", "bin"} {
		if !regexp.MustCompile(`(?m)^/?` + regexp.QuoteMeta(want) + `/?$`).MatchString(ignore) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
