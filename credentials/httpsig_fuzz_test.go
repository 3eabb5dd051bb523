package credentials

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The seed corpora of these fuzz tests are in testdata/fuzz/<Name>: the
// RFC 9421 / RFC 9530 examples and attack-ish inputs (duplicates, line
// injection, oversize, non-canonical base64, unsupported parameters).
// Rewrite them with
//
//	go test -run=TestHTTPSigFuzzCorpus ./credentials/ -args -update-httpsig-corpus
//
// and run a target with
//
//	go test -run=^$ -fuzz=^FuzzParseSignatureInput$ -fuzztime=30s ./credentials/
var updateHTTPSigCorpus = flag.Bool("update-httpsig-corpus", false, "rewrite the RFC 9421/9530 fuzz seed corpora in testdata/fuzz")

// httpsigSeed is one seed: a file name and the fuzz arguments.
type httpsigSeed struct {
	name string
	args []any
}

func httpsigSeeds() map[string][]httpsigSeed {
	one := func(name string, v any) httpsigSeed { return httpsigSeed{name, []any{v}} }
	b21 := `sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"`
	b22 := `sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"`
	b23 := `sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"`
	b25 := `sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`
	keygate := `sig1=("@method" "@authority" "@path" "@query" "content-digest");created=1700000000;keyid="hk_datasync1";alg="hmac-sha256";nonce="3f2c0a9e"`
	input := []httpsigSeed{
		one("rfc-b21", b21), one("rfc-b22", b22), one("rfc-b23", b23), one("rfc-b25", b25),
		one("rfc-b24-status", `sig-b24=("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`),
		one("rfc-b3-ttrp", `ttrp=("@path" "@query" "@method" "@authority" "client-cert");created=1618884473;keyid="test-key-ecc-p256"`),
		one("rfc-multi", b21+", "+b25),
		one("rfc-proxy", `sig1=("@method" "@authority" "@path" "content-digest" "content-length" "content-type");created=1618884475;keyid="test-key-rsa-pss", proxy_sig=("signature";key="sig1" "forwarded");created=1618884480;expires=1618884540;keyid="test-key-rsa";alg="rsa-v1_5-sha256"`),
		one("keygate", keygate),
		one("whitespace", "  a=(  \"@method\"   \"date\" );created=1;  keyid=\"k\"\t,\tb=();expires=2  "),
		one("unknown-params", `s=();created=5;x-custom=?1;weight=0.50;blob=:AAE=:;tok=abc/def;flag`),
		one("escapes", `s=("@query-param";name="a\\b");nonce="";keyid="\"q\""`),
		one("attack-dup-label", `sig1=("@method");keyid="a", sig1=("@path");keyid="b"`),
		one("attack-dup-created", `sig1=("@method");created=1;created=9999999999`),
		one("attack-dup-component", `sig1=("@method" "@method")`),
		one("attack-upper-field", `sig1=("Content-Digest")`),
		one("attack-sf", `sig1=("content-digest";sf)`),
		one("attack-bs", `sig1=("content-digest";bs)`),
		one("attack-req", `sig1=("@method";req)`),
		one("attack-key", `sig1=("example-dict";key="a")`),
		one("attack-newline", "sig1=(\"date\n\\\"@method\\\": GET\")"),
		one("attack-nul", "sig1=();keyid=\"a\x00\""),
		one("attack-non-ascii", "sig1=();keyid=\"\u00e9\""),
		one("attack-created-string", `sig1=();created="1700000000"`),
		one("attack-created-decimal", `sig1=();created=1700000000.5`),
		one("attack-created-negative", `sig1=();created=-1`),
		one("attack-created-long", `sig1=();created=1234567890123456`),
		one("attack-query-param-token", `sig1=("@query-param";name=id)`),
		one("attack-trailing-comma", b25+","),
		one("attack-unterminated", `sig1=("@method" "@path"`),
		one("attack-many-signatures", strings.Repeat("s=(), ", MaxSignatures)+"t=()"),
		one("attack-many-components", "s=("+strings.Repeat(`"a" `, MaxSignatureComponents+1)+")"),
		one("attack-long", "s=();keyid=\""+strings.Repeat("k", MaxSignatureFieldLen)+"\""),
		one("attack-deep-parens", strings.Repeat("(", 100)),
		one("attack-many-params", "s=()"+strings.Repeat(";a", 20)),
	}
	sigs := []httpsigSeed{
		one("rfc-b25", `sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:`),
		one("rfc-b24", "sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:"),
		one("rfc-multi", `sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:, ttrp=:xVMHVpawaAC/0SbHrKRs9i8I3eOs5RtTMGCWXm/9nvZzoHsIg6Mce9315T6xoklyy0yzhD9ah4JHRwMLOgmizw==:`),
		one("attack-no-padding", `sig1=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8:`),
		one("attack-pad-bits", `sig1=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE9=:`),
		one("attack-base64url", `sig1=:pxcQw6G3AjtMBQjwo8XzkZf_bws5LelbaMk5rGIGtE8=:`),
		one("attack-dup-label", `sig1=:AAAA:, sig1=:BBBB:`),
		one("attack-empty", `sig1=::`),
		one("attack-params", `sig1=:AAAA:;alg="x"`),
		one("attack-inner-list", `sig1=(:AAAA:)`),
		one("attack-string", `sig1="pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8="`),
		one("attack-long", "sig1=:"+strings.Repeat("AAAA", MaxSignatureFieldLen/4)+":"),
	}
	rfcPath := "/foo?param=Value&Pet=dog"
	base := []httpsigSeed{
		{"rfc-b23", []any{`"date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length"`, rfcPath}},
		{"rfc-b22", []any{`"@authority" "content-digest" "@query-param";name="Pet"`, rfcPath}},
		{"derived", []any{`"@method" "@authority" "@scheme" "@target-uri" "@request-target" "@path" "@query"`, rfcPath}},
		{"rfc-query-param", []any{`"@query-param";name="var" "@query-param";name="bar" "@query-param";name="fa%C3%A7ade%22%3A%20"`, rfc9421ParametersPath}},
		{"query-param-repeated", []any{`"@query-param";name="a"`, "/?a=1&a=2"}},
		{"query-param-bad-utf8", []any{`"@query-param";name="a"`, "/?a=%C3%28&b=%F0%9F%98"}},
		{"query-param-percent", []any{`"@query-param";name="%25"`, "/?%=%%25%2"}},
		{"no-query", []any{`"@query" "@path"`, "/"}},
		{"empty-path", []any{`"@path" "@target-uri" "@request-target"`, ""}},
		{"asterisk", []any{`"@target-uri" "@path"`, "*"}},
		{"newline-path", []any{`"@path" "@query" "@request-target" "@target-uri"`, "/a\n\"@method\": GET?x\ny"}},
		{"absent-field", []any{`"x-absent"`, "/"}},
		{"multi-valued-field", []any{`"accept" "x-ows" "x-empty"`, "/"}},
		{"newline-field", []any{`"x-newline"`, "/"}},
		{"duplicate", []any{`"@method" "@method"`, "/"}},
		{"unsupported", []any{`"@status" "@signature-params" "@request-response"`, "/"}},
	}
	digest := []httpsigSeed{
		{"rfc-sha256", []any{rfc9530SHA256, []byte(rfc9530Body)}},
		{"rfc-sha512", []any{rfc9530SHA512, []byte(rfc9530Body)}},
		{"rfc-both", []any{rfc9530SHA256 + ", " + rfc9530SHA512, []byte(rfc9530Body)}},
		{"rfc-9530-example", []any{"sha-256=:d435Qo+nKZ+gLcUHn7GQtQ72hiBVAgqoLsZnZPiTGPk=:,sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:", []byte(`{"hello": "world"}` + "\n")}},
		{"mismatch", []any{rfc9530SHA256, []byte(`{"hello": "world!"}`)}},
		{"unknown-only", []any{"md5=:CY9rzUYh03PK3k6DJie09g==:, unixsum=?1", []byte("x")}},
		{"empty", []any{"", []byte{}}},
		{"attack-dup", []any{"sha-256=:AAAA:, " + rfc9530SHA256, []byte(rfc9530Body)}},
		{"attack-inner-list", []any{"sha-256=(:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:)", []byte(rfc9530Body)}},
		{"attack-upper", []any{"SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", []byte(rfc9530Body)}},
		{"attack-truncated", []any{"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBP:", []byte(rfc9530Body)}},
		{"attack-param", []any{rfc9530SHA256 + "; sha-512=:AAAA:", []byte(rfc9530Body)}},
	}
	return map[string][]httpsigSeed{
		"FuzzParseSignatureInput": input,
		"FuzzParseSignatures":     sigs,
		"FuzzSignatureBase":       base,
		"FuzzCheckContentDigest":  digest,
	}
}

// TestHTTPSigFuzzCorpus rewrites the seed corpora with
// -update-httpsig-corpus and otherwise checks that every seed is on
// disk (go test runs the files as the seed corpus of each target).
func TestHTTPSigFuzzCorpus(t *testing.T) {
	for target, seeds := range httpsigSeeds() {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, a := range s.args {
				switch v := a.(type) {
				case string:
					fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
				case []byte:
					fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
				}
			}
			file := filepath.Join(dir, s.name)
			if *updateHTTPSigCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (rewrite the corpora with -update-httpsig-corpus)", err)
			}
			if string(got) != b.String() {
				t.Errorf("%s is stale (rewrite the corpora with -update-httpsig-corpus)", file)
			}
		}
	}
}

// serializeSignatureInput is the Signature-Input field for ps.
func serializeSignatureInput(ps []SigParams) string {
	var b strings.Builder
	for i := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ps[i].Label)
		b.WriteByte('=')
		b.WriteString(ps[i].raw)
	}
	return b.String()
}

// fuzzMessage is the fixed message FuzzParseSignatureInput and
// FuzzSignatureBase build bases over.
func fuzzMessage(path string) *HTTPMessage {
	m := rfc9421Request()
	m.Path = path
	h := m.Header
	m.Header = func(name string) []string {
		switch name {
		case "accept":
			return []string{"application/json", " */* "}
		case "x-ows":
			return []string{"  a  "}
		case "x-empty":
			return []string{""}
		case "x-newline":
			return []string{"a\r\n\"@method\": GET"}
		}
		return h(name)
	}
	return m
}

func FuzzParseSignatureInput(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		ps, err := ParseSignatureInput(v)
		if err != nil {
			if ps != nil {
				t.Fatal("result with an error")
			}
			if len(err.Error()) > 200 {
				t.Fatalf("long error: %v", err)
			}
			return
		}
		if len(ps) == 0 || len(ps) > MaxSignatures {
			t.Fatalf("%d signatures", len(ps))
		}
		// Re-serialized, the field parses to the same SigParams.
		again := serializeSignatureInput(ps)
		ps2, err := ParseSignatureInput(again)
		if err != nil {
			t.Fatalf("re-serialized %q: %v", again, err)
		}
		if !reflect.DeepEqual(ps, ps2) {
			t.Fatalf("re-parsed differently:\n%+v\n%+v", ps, ps2)
		}
		// The canonical form is a fixed point.
		if serializeSignatureInput(ps2) != again {
			t.Fatal("serialization is not canonical")
		}
		m := fuzzMessage("/foo?param=Value&Pet=dog")
		for i := range ps {
			p := &ps[i]
			if len(p.Components) > MaxSignatureComponents {
				t.Fatalf("%d components", len(p.Components))
			}
			base, err := SignatureBase(m, p)
			if err != nil {
				continue
			}
			// One line per component, then @signature-params, which is
			// the serialization received.
			if n := bytes.Count(base, []byte{'\n'}); n != len(p.Components) {
				t.Fatalf("%d lines for %d components:\n%s", n+1, len(p.Components), base)
			}
			last := base[bytes.LastIndexByte(base, '\n')+1:]
			if string(last) != `"@signature-params": `+p.raw {
				t.Fatalf("last line %q", last)
			}
		}
	})
}

func FuzzParseSignatures(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		sigs, err := ParseSignatures(v)
		if err != nil {
			if sigs != nil {
				t.Fatal("result with an error")
			}
			return
		}
		if len(sigs) == 0 || len(sigs) > MaxSignatures {
			t.Fatalf("%d signatures", len(sigs))
		}
		// Each signature has one spelling: serialize and parse again.
		labels := make([]string, 0, len(sigs))
		for l, s := range sigs {
			if len(s) == 0 {
				t.Fatal("empty signature")
			}
			labels = append(labels, l)
		}
		sort.Strings(labels)
		var b []byte
		for i, l := range labels {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, l...)
			b = append(b, '=')
			b = sfAppendBare(b, sfBareItem{typ: sfBytes, bin: sigs[l]})
		}
		again, err := ParseSignatures(string(b))
		if err != nil || !reflect.DeepEqual(again, sigs) {
			t.Fatalf("re-serialized %q: %v", b, err)
		}
		// The canonical base64 of each signature occurs in the input.
		for _, l := range labels {
			enc := sfAppendBare(nil, sfBareItem{typ: sfBytes, bin: sigs[l]})
			if !strings.Contains(v, string(enc)) {
				t.Fatalf("%q: %s is not spelled canonically in the input", v, enc)
			}
		}
	})
}

func FuzzSignatureBase(f *testing.F) {
	f.Fuzz(func(t *testing.T, comps, path string) {
		p := mustParseOrNil("s=(" + comps + ");created=1")
		if p == nil {
			// Not an inner list ParseSignatureInput accepts: build the
			// components by hand, one per whitespace-separated word, to
			// reach SignatureBase's own checks.
			p = &SigParams{Created: 1, HasCreated: true}
			for _, w := range strings.Fields(comps) {
				name, param, _ := strings.Cut(w, ";")
				p.Components = append(p.Components, SigComponent{Name: strings.Trim(name, `"`), Param: param})
			}
		}
		m := fuzzMessage(path)
		base, err := SignatureBase(m, p)
		if err != nil {
			if base != nil {
				t.Fatal("base with an error")
			}
			return
		}
		// No value can add a line: one line per component, each starting
		// with its identifier, then @signature-params.
		lines := strings.Split(string(base), "\n")
		if len(lines) != len(p.Components)+1 {
			t.Fatalf("%d lines for %d components:\n%s", len(lines), len(p.Components), base)
		}
		for i, c := range p.Components {
			if !strings.HasPrefix(lines[i], c.String()+": ") {
				t.Fatalf("line %d %q does not start with %s", i, lines[i], c)
			}
		}
		if !strings.HasPrefix(lines[len(lines)-1], `"@signature-params": (`) {
			t.Fatalf("last line %q", lines[len(lines)-1])
		}
		// Deterministic.
		if again, err := SignatureBase(m, p); err != nil || !bytes.Equal(again, base) {
			t.Fatal("second base differs")
		}
	})
}

// mustParseOrNil returns the one signature of v, or nil.
func mustParseOrNil(v string) *SigParams {
	ps, err := ParseSignatureInput(v)
	if err != nil || len(ps) != 1 {
		return nil
	}
	return &ps[0]
}

func FuzzCheckContentDigest(f *testing.F) {
	f.Fuzz(func(t *testing.T, field string, body []byte) {
		err := CheckContentDigest(field, body)
		if CheckContentDigest(ContentDigestSHA256(body), body) != nil {
			t.Fatal("own digest refused")
		}
		if err != nil {
			return
		}
		// Accepted: some sha-256 or sha-512 member matches, none differs.
		ms, perr := sfParseDictionary(field, sfOptions{})
		if perr != nil {
			t.Fatalf("accepted %q, which does not parse: %v", field, perr)
		}
		s256, s512 := sha256.Sum256(body), sha512.Sum512(body)
		matched := 0
		for _, m := range ms {
			var want []byte
			switch m.key {
			case "sha-256":
				want = s256[:]
			case "sha-512":
				want = s512[:]
			default:
				continue
			}
			if m.inner || subtle.ConstantTimeCompare(m.item.bare.bin, want) != 1 {
				t.Fatalf("accepted %q with a wrong %s", field, m.key)
			}
			matched++
		}
		if matched == 0 {
			t.Fatalf("accepted %q without a supported digest", field)
		}
	})
}
