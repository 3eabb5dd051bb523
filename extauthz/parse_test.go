package extauthz

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

func TestQueryParam(t *testing.T) {
	for _, tc := range []struct {
		path string
		val  string
		n    int
		bad  bool
	}{
		{"/a", "", 0, false},
		{"/a?b=1", "", 0, false},
		{"/a?api_key=k1", "k1", 1, false},
		{"/a?x=1&api_key=k%2B1&y=2", "k+1", 1, false},
		{"/a?api_key=k+1", "k+1", 1, false},
		{"/a?api%5Fkey=k1", "k1", 1, false},
		{"/a?api_key=k1&api_key=k1", "k1", 2, false},
		{"/a?api_key=k1#api_key=k2", "k1", 1, false},
		{"/a#?api_key=k1", "", 0, false},
		{"/a?api_key=%zz", "", 1, true},
		{"/a?api_key", "", 1, false},
		{"/a?api_keys=k1&xapi_key=k2", "", 0, false},
	} {
		val, n, bad := queryParam(tc.path, "api_key")
		if val != tc.val || n != tc.n || bad != tc.bad {
			t.Errorf("queryParam(%q) = %q, %d, %v; want %q, %d, %v", tc.path, val, n, bad, tc.val, tc.n, tc.bad)
		}
	}
}

func TestCookies(t *testing.T) {
	for _, tc := range []struct {
		h, val string
		n      int
		rest   string
	}{
		{"", "", 0, ""},
		{"kg=abc", "abc", 1, ""},
		{"a=1; kg=abc; b=2", "abc", 1, "a=1; b=2"},
		{"a=1;kg=\"abc\";b=2", "abc", 1, "a=1; b=2"},
		{"kg=abc; kg=def", "abc", 2, ""},
		{"KG=abc; kgx=1", "", 0, "KG=abc; kgx=1"},
		{" ; a=1 ;; ", "", 0, "a=1"},
	} {
		val, n := cookieValue(tc.h, "kg")
		rest := withoutCookie(tc.h, "kg")
		if val != tc.val || n != tc.n || rest != tc.rest {
			t.Errorf("cookie %q = %q, %d, rest %q; want %q, %d, %q", tc.h, val, n, rest, tc.val, tc.n, tc.rest)
		}
	}
}

func TestForwardedFor(t *testing.T) {
	for _, tc := range []struct {
		h    string
		hops int
		want string
	}{
		{"10.0.0.1", 1, "10.0.0.1"},
		{"10.0.0.1, 10.0.0.2", 1, "10.0.0.2"},
		{"10.0.0.1, 10.0.0.2", 2, "10.0.0.1"},
		{"10.0.0.1, 10.0.0.2", 3, ""},
		{"", 1, ""},
		{"10.0.0.1,,", 1, ""},
		{"[2001:db8::1]:443 ,10.0.0.2:80", 2, "2001:db8::1"},
		{"::ffff:10.1.2.3", 1, "10.1.2.3"},
		{"evil", 1, ""},
		{"10.0.0.1", 0, ""},
	} {
		a, ok := forwardedFor(tc.h, tc.hops)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("forwardedFor(%q, %d) = %q; want %q", tc.h, tc.hops, got, tc.want)
		}
	}
}

func TestHeaderMapJoin(t *testing.T) {
	hr := &authv3.AttributeContext_HttpRequest{
		Headers: map[string]string{"x-api-key": "ignored"},
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "x-api-key", Value: "k1"},
			{Key: "X-Api-Key", RawValue: []byte("k2")},
			{Key: "cookie", Value: "a=1"},
			{Key: "cookie", Value: "b=2"},
			{Key: ":path", RawValue: []byte("/p?q=1")},
			{Key: "signature-input", Value: "sig1=()"},
		}},
	}
	var h headers
	h.read(hr)
	if h.apiKey != "k1,k2" || !h.hasAPIKey || h.cookie != "a=1; b=2" || h.path != "/p?q=1" || !h.signature || h.hasAuthorization {
		t.Errorf("read = %+v", h)
	}
}

// FuzzQueryParam: never panics, and the value is the percent-decoding of
// an api_key parameter's value in the input.
func FuzzQueryParam(f *testing.F) {
	for _, s := range []string{"/a?api_key=k1", "/a?x=1&api_key=k%2B1", "/?api%5fkey=a&api_key=b", "/a?api_key=%zz#x", "?&&=&api_key"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		val, n, bad := queryParam(path, "api_key")
		if n == 0 || bad {
			if val != "" {
				t.Fatalf("value %q without a parameter", val)
			}
			return
		}
		before, q, _ := strings.Cut(path, "?")
		q, _, _ = strings.Cut(q, "#")
		if strings.Contains(before, "#") {
			t.Fatalf("queryParam(%q) read a fragment", path)
		}
		found := false
		for _, seg := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(seg, "=")
			dk, err := url.PathUnescape(k)
			if err != nil || dk != "api_key" {
				continue
			}
			if dv, err := url.PathUnescape(v); err == nil && dv == val {
				found = true
			}
		}
		if !found {
			t.Fatalf("queryParam(%q) = %q: not a decoded api_key value of the input", path, val)
		}
	})
}

// FuzzCookie: never panics; the value is a substring of the header, and
// the rest holds only pairs of the input and none named like the cookie.
func FuzzCookie(f *testing.F) {
	f.Add("a=1; kg=abc; b=2", "kg")
	f.Add("kg=\"q\";kg=x", "kg")
	f.Add(";;=;", "")
	f.Fuzz(func(t *testing.T, h, name string) {
		val, n := cookieValue(h, name)
		if n == 0 && val != "" || !strings.Contains(h, val) {
			t.Fatalf("cookieValue(%q, %q) = %q, %d", h, name, val, n)
		}
		rest := withoutCookie(h, name)
		if rest == "" {
			return
		}
		for _, pair := range strings.Split(rest, "; ") {
			if !strings.Contains(h, pair) {
				t.Fatalf("withoutCookie(%q) yields %q, not in the input", h, pair)
			}
			if k, _, ok := strings.Cut(pair, "="); ok && trimOWS(k) == name {
				t.Fatalf("withoutCookie(%q, %q) kept %q", h, name, pair)
			}
		}
	})
}

// FuzzForwardedFor: never panics; the address is the parse of the entry
// hops from the right.
func FuzzForwardedFor(f *testing.F) {
	f.Add("10.0.0.1, 10.0.0.2", 1)
	f.Add("[::1]:80,1.2.3.4:5", 2)
	f.Add(",,,", 3)
	f.Fuzz(func(t *testing.T, h string, hops int) {
		a, ok := forwardedFor(h, hops)
		if !ok {
			if a.IsValid() {
				t.Fatalf("invalid entry yields %v", a)
			}
			return
		}
		parts := strings.Split(h, ",")
		if hops < 1 || hops > len(parts) {
			t.Fatalf("forwardedFor(%q, %d) = %v beyond the entries", h, hops, a)
		}
		want, wok := parseIP(trimOWS(parts[len(parts)-hops]))
		if !wok || want != a {
			t.Fatalf("forwardedFor(%q, %d) = %v; entry parses as %v", h, hops, a, want)
		}
		if _, err := netip.ParseAddr(a.String()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzHeaderMap: never panics; each header Check reads is the join of the
// input entries of that name, in order.
func FuzzHeaderMap(f *testing.F) {
	f.Add("x-api-key:k1\nx-api-key:k2\ncookie:a=1")
	f.Add("Authorization:ApiKey x\n:path:/a?b\nsignature:x")
	f.Add(":::\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		var list []*corev3.HeaderValue
		var wantKey, wantAuth, wantCookie []string
		for i, line := range strings.Split(in, "\n") {
			k, v, _ := strings.Cut(line[min(1, len(line)):], ":")
			k = line[:min(1, len(line))] + k
			hv := &corev3.HeaderValue{Key: k}
			if i%2 == 0 {
				hv.Value = v
			} else {
				hv.RawValue = []byte(v)
				if v == "" {
					hv.Value = "" // raw_value empty: value (also empty) is used
				}
			}
			list = append(list, hv)
			switch strings.ToLower(k) {
			case "x-api-key":
				wantKey = append(wantKey, v)
			case "authorization":
				wantAuth = append(wantAuth, v)
			case "cookie":
				wantCookie = append(wantCookie, v)
			}
		}
		var h headers
		h.read(&authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: list}})
		if h.apiKey != strings.Join(wantKey, ",") || h.hasAPIKey != (len(wantKey) > 0) {
			t.Fatalf("x-api-key = %q; want %q", h.apiKey, wantKey)
		}
		if h.authorization != strings.Join(wantAuth, ",") || h.hasAuthorization != (len(wantAuth) > 0) {
			t.Fatalf("authorization = %q; want %q", h.authorization, wantAuth)
		}
		if h.cookie != strings.Join(wantCookie, "; ") {
			t.Fatalf("cookie = %q; want %q", h.cookie, wantCookie)
		}
	})
}
