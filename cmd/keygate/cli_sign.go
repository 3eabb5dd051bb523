package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/credentials"
)

const signHelp = `Usage: keygate sign --key-id hk_… --secret-file FILE [flags] METHOD URL [BODY|@FILE|@-]

Prints the headers a client sends for a request signed with an HMAC key, one
"Name: value" per line, so client authors can compare them with what their own
code produces. Nothing is sent and no keygate needs to run.

  --scheme rfc9421 (default): RFC 9421 with alg="hmac-sha256", label sig1,
      covering @method, @authority, @path, @query (when the URL has a query)
      and content-digest (RFC 9530 sha-256, when there is a body); prints
      Content-Digest, Signature-Input and Signature.
  --scheme timestamp-body: the legacy scheme; prints X-Timestamp, X-Signature
      (hex HMAC-SHA256 of "<X-Timestamp>.<body>") and, with --tenant,
      X-Tenant-ID. --key-id is not needed: keygate picks the tenant's key.

The secret file holds the raw secret bytes, or with --base64 their standard
base64 (as "keygate hmac create" printed it); - reads it from stdin. The body
is the third argument as it is, @FILE for a file's bytes, or @- for stdin.
With --created and --nonce none the output is deterministic.

Flags:
`

// headerFlag is the repeatable --header 'Name: value'.
type headerFlag [][2]string

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(v string) error {
	name, val, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\"(),/;<=>?@[\\]{}") {
		return fmt.Errorf("%q is not 'Name: value'", v)
	}
	switch strings.ToLower(name) {
	case "host", "content-digest", "signature", "signature-input", "x-signature", "x-timestamp", "x-tenant-id":
		return fmt.Errorf("%s is set by keygate sign (the host comes from the URL, X-Tenant-ID from --tenant)", name)
	}
	*h = append(*h, [2]string{textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(val)})
	return nil
}

// signedRequest is what sign computed: the headers to send, in order.
type signedRequest struct {
	method, url string
	body        []byte
	bodyFile    string // the @FILE the body came from, for --curl
	headers     [][2]string
}

// sign runs `keygate sign`.
func sign(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const name = "keygate sign"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	keyID := fs.String("key-id", "", "the HMAC key's ID (hk_…), sent as keyid (rfc9421)")
	secretFile := fs.String("secret-file", "", "file holding the secret (- for stdin); raw bytes unless --base64")
	b64 := fs.Bool("base64", false, "the secret file holds the standard base64 of the secret")
	scheme := fs.String("scheme", credentials.SchemeRFC9421, "rfc9421 or timestamp-body")
	nonce := fs.String("nonce", "auto", "rfc9421 nonce: auto (random), none, or the value to send")
	created := fs.Int64("created", 0, "signing time in Unix seconds (default: now)")
	tenant := fs.String("tenant", "", "timestamp-body: the X-Tenant-ID to send")
	var extra headerFlag
	fs.Var(&extra, "header", "an extra header to send, 'Name: value' (repeatable; printed, not signed)")
	output := fs.String("o", "table", "output format: table (Name: value lines) or json (an object of lower-case names)")
	curl := fs.Bool("curl", false, "print a curl command line that sends the signed request")
	pos, usage, helped, err := parseCommand(fs, name, signHelp, args, stdout, stderr)
	if helped {
		return 0
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	switch {
	case err != nil:
		return usage("%v", err)
	case len(pos) < 2 || len(pos) > 3:
		return usage("want METHOD URL [BODY|@FILE], got %d argument(s)", len(pos))
	case *scheme != credentials.SchemeRFC9421 && *scheme != credentials.SchemeTimestampBody:
		return usage("--scheme must be %s or %s", credentials.SchemeRFC9421, credentials.SchemeTimestampBody)
	case *scheme == credentials.SchemeRFC9421 && *keyID == "":
		return usage("--key-id is required (the hk_… ID of the key)")
	case *scheme == credentials.SchemeRFC9421 && *tenant != "":
		return usage("--tenant is for --scheme timestamp-body (RFC 9421 requests name their key by keyid)")
	case *secretFile == "":
		return usage("--secret-file is required (the secret is never taken from the command line)")
	case *output != "table" && *output != "json":
		return usage("-o must be table or json")
	case *curl && *output == "json":
		return usage("give --curl or -o json, not both")
	case *created < 0:
		return usage("--created must be Unix seconds")
	}
	method := pos[0]
	if method == "" || strings.ContainsAny(method, " \t\r\n") {
		return usage("%q is not an HTTP method", method)
	}
	u, err := url.Parse(pos[1])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return usage("%q is not an absolute http(s) URL without user info or fragment", pos[1])
	}
	req := &signedRequest{method: method, url: pos[1]}
	if len(pos) == 3 {
		switch b := pos[2]; {
		case b == "@-":
			if *secretFile == "-" {
				return usage("the secret and the body cannot both come from stdin")
			}
			req.body, err = io.ReadAll(stdin)
		case strings.HasPrefix(b, "@"):
			req.bodyFile = b[1:]
			req.body, err = os.ReadFile(req.bodyFile)
		default:
			req.body = []byte(b)
		}
		if err != nil {
			return fail(fmt.Errorf("body: %w", err))
		}
	}
	data, err := readSecret(stdin, *secretFile)
	if err != nil {
		return fail(err)
	}
	secret := data
	if *b64 {
		if secret, err = decodeBase64Secret(data); err != nil {
			return fail(err)
		}
	} else {
		warnTrailingNewline(stderr, data)
	}
	if len(secret) < credentials.MinHMACSecret {
		fmt.Fprintf(stderr, "warning: the secret is %d bytes; keygate refuses HMAC keys under %d bytes\n", len(secret), credentials.MinHMACSecret)
	}
	when := time.Now()
	if flagSet(fs, "created") {
		when = time.Unix(*created, 0)
	}
	req.headers = append(req.headers, extra...)
	switch *scheme {
	case credentials.SchemeRFC9421:
		n := *nonce
		switch n {
		case "auto":
			b := make([]byte, 16)
			rand.Read(b)
			n = base64.RawURLEncoding.EncodeToString(b)
		case "none":
			n = ""
		}
		m := &credentials.HTTPMessage{Method: method, Authority: u.Host, Path: u.RequestURI(), Scheme: u.Scheme,
			Header: func(name string) []string {
				var vs []string
				for _, h := range extra {
					if strings.EqualFold(h[0], name) {
						vs = append(vs, h[1])
					}
				}
				return vs
			}}
		hs, err := credentials.SignRFC9421(m, req.body, *keyID, secret, when, n)
		if err != nil {
			return fail(err)
		}
		for _, h := range []string{"Content-Digest", "Signature-Input", "Signature"} {
			if v, ok := hs[strings.ToLower(h)]; ok {
				req.headers = append(req.headers, [2]string{h, v})
			}
		}
	case credentials.SchemeTimestampBody:
		if flagSet(fs, "nonce") && *nonce != "none" {
			return usage("--nonce is for --scheme rfc9421 (the legacy scheme has none)")
		}
		ts := strconv.FormatInt(when.Unix(), 10)
		req.headers = append(req.headers, [2]string{"X-Timestamp", ts},
			[2]string{"X-Signature", credentials.LegacySign(secret, ts, req.body)})
		if *tenant != "" {
			req.headers = append(req.headers, [2]string{"X-Tenant-ID", *tenant})
		}
	}
	switch {
	case *curl:
		s, err := req.curl()
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, s)
	case *output == "json":
		obj := make(map[string]string, len(req.headers))
		for _, h := range req.headers {
			k := strings.ToLower(h[0])
			if v, dup := obj[k]; dup {
				obj[k] = v + ", " + h[1]
			} else {
				obj[k] = h[1]
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(obj); err != nil {
			return fail(err)
		}
	default:
		for _, h := range req.headers {
			fmt.Fprintf(stdout, "%s: %s\n", h[0], h[1])
		}
	}
	return 0
}

// curl returns a curl command line (POSIX shell quoting) that sends r.
func (r *signedRequest) curl() (string, error) {
	parts := []string{"curl", "-sS"}
	if r.method != http.MethodGet || len(r.body) > 0 {
		parts = append(parts, "-X", shellQuote(r.method))
	}
	for _, h := range r.headers {
		parts = append(parts, "-H", shellQuote(h[0]+": "+h[1]))
	}
	switch {
	case r.bodyFile != "":
		parts = append(parts, "--data-binary", shellQuote("@"+r.bodyFile))
	case len(r.body) > 0:
		if !utf8.Valid(r.body) || strings.ContainsRune(string(r.body), 0) {
			return "", errors.New("--curl: the body is binary; give it as @FILE")
		}
		parts = append(parts, "--data-raw", shellQuote(string(r.body)))
	}
	parts = append(parts, shellQuote(r.url))
	return strings.Join(parts, " "), nil
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
