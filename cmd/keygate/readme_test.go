package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// block is a fenced block of the README walkthrough.
type block struct {
	lang string // "sh" or "text"
	body string
}

// walkthrough returns the fenced blocks between the walkthrough markers.
func walkthrough(t *testing.T, readme string) []block {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- walkthrough:start")
	if !ok {
		t.Fatal("README has no walkthrough:start marker")
	}
	section, _, ok := strings.Cut(rest, "<!-- walkthrough:end -->")
	if !ok {
		t.Fatal("README has no walkthrough:end marker")
	}
	var blocks []block
	lines := strings.Split(section, "\n")
	for i := 0; i < len(lines); i++ {
		lang, ok := strings.CutPrefix(lines[i], "```")
		if !ok || lang == "" {
			continue
		}
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		blocks = append(blocks, block{lang: lang, body: strings.Join(body, "\n")})
	}
	return blocks
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`kg_[0-9A-Za-z]{46}`), "kg_" + strings.Repeat("X", 46)},
	{regexp.MustCompile(`ak_[0-9A-Za-z]{16}`), "ak_" + strings.Repeat("X", 16)},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`), "YYYY-MM-DDTHH:MM:SSZ"},
}

// normalize replaces what differs from run to run (generated IDs and keys,
// times) and trailing blanks.
func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		out = append(out, strings.TrimRight(l, " \t"))
	}
	return strings.Join(out, "\n")
}

// findGrpcurl returns the grpcurl that `make tools` installs into bin/.
func findGrpcurl(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../../bin/grpcurl"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	t.Fatal("grpcurl is missing: run `make tools` (make test does) to install grpcurl v1.9.4 into bin/")
	return ""
}

// TestREADMEWalkthrough runs the README's walkthrough as written: keygate
// on its default ports (as `make run` starts it), then every sh block in
// one bash session, comparing each block's output with the text block
// after it.
func TestREADMEWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := walkthrough(t, string(readme))
	if len(blocks) < 4 || blocks[0].lang != "sh" || strings.TrimSpace(blocks[0].body) != "make run" {
		t.Fatalf("the walkthrough must start with a `make run` block; got %d blocks", len(blocks))
	}
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	os.Mkdir(bin, 0o755)
	for name, src := range map[string]string{"keygate": keygateBin, "grpcurl": findGrpcurl(t)} {
		if err := os.Symlink(src, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed by the walkthrough")
	}

	// `make run` = bin/keygate serve with the embedded defaults, in work/.
	in := &instance{}
	*in = *startDefault(t, work)

	// One bash session for every sh block; a marker line after each block
	// splits the output.
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	var shBlocks []int
	for i, b := range blocks[1:] {
		if b.lang != "sh" {
			continue
		}
		shBlocks = append(shBlocks, i+1)
		fmt.Fprintf(&script, "%s\necho '@@block-end@@'\n", b.body)
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "KEYGATE_ADMIN_TOKEN=", "KEYGATE_ADMIN_URL=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("walkthrough failed: %v\nstdout:\n%s\nstderr:\n%s\nkeygate log:\n%s", err, stdout.String(), stderr.String(), in.log.String())
	}
	outputs := strings.Split(stdout.String(), "@@block-end@@\n")
	for n, bi := range shBlocks {
		if bi+1 >= len(blocks) || blocks[bi+1].lang != "text" {
			continue // a block without shown output
		}
		got, want := normalize(outputs[n]), normalize(blocks[bi+1].body)
		if got != want {
			t.Errorf("README block %d (%q…) printed:\n%s\n\nthe README shows:\n%s", bi, firstLine(blocks[bi].body), got, want)
		}
	}
	if err := in.stop(t); err != nil {
		t.Errorf("keygate exit: %v", err)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
