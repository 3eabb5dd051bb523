package credentials

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    RateLimit
		wantErr bool
		str     string
	}{
		{in: "10/second", want: RateLimit{10, time.Second}, str: "10/second"},
		{in: "10/s", want: RateLimit{10, time.Second}, str: "10/second"},
		{in: "10/sec", want: RateLimit{10, time.Second}, str: "10/second"},
		{in: "600/minute", want: RateLimit{600, time.Minute}, str: "600/minute"},
		{in: "600/m", want: RateLimit{600, time.Minute}, str: "600/minute"},
		{in: "600/min", want: RateLimit{600, time.Minute}, str: "600/minute"},
		{in: "10000/hour", want: RateLimit{10000, time.Hour}, str: "10000/hour"},
		{in: "1/h", want: RateLimit{1, time.Hour}, str: "1/hour"},
		{in: "5/day", want: RateLimit{5, 24 * time.Hour}, str: "5/day"},
		{in: "5/d", want: RateLimit{5, 24 * time.Hour}, str: "5/day"},
		{in: "1000000000/second", want: RateLimit{1_000_000_000, time.Second}, str: "1000000000/second"},
		{in: "007/s", want: RateLimit{7, time.Second}, str: "7/second"},
		{in: "1000000001/second", wantErr: true},
		{in: "0/second", wantErr: true},
		{in: "-1/second", wantErr: true},
		{in: "+1/second", wantErr: true},
		{in: "1.5/second", wantErr: true},
		{in: "1e3/second", wantErr: true},
		{in: " 1/second", wantErr: true},
		{in: "1/second ", wantErr: true},
		{in: "1/ second", wantErr: true},
		{in: "1/Second", wantErr: true},
		{in: "1/week", wantErr: true},
		{in: "1/", wantErr: true},
		{in: "/second", wantErr: true},
		{in: "10", wantErr: true},
		{in: "", wantErr: true},
		{in: "1/second/2", wantErr: true},
		{in: "99999999999999999999/second", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRateLimit(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRateLimit(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRateLimit(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseRateLimit(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
	}
}

func TestBucket(t *testing.T) {
	for _, l := range []RateLimit{{1, time.Second}, {3, time.Second}, {7, time.Second}, {10, time.Minute}, {1_000_000_000, time.Second}} {
		b := newBucket(l)
		now := time.Unix(1_700_000_000, 0).UnixNano()
		for i := int64(0); i < min(l.N, 10_000); i++ {
			if w := b.take(now); w != 0 {
				t.Fatalf("%v: take %d of %d refused (wait %v)", l, i+1, l.N, w)
			}
		}
		if l.N > 10_000 {
			continue
		}
		w := b.take(now)
		if w <= 0 || w > l.Period/time.Duration(l.N) {
			t.Fatalf("%v: take %d = %v, want a wait in (0, %v]", l, l.N+1, w, l.Period/time.Duration(l.N))
		}
		// The wait it names is enough for one more, and no less is.
		if b.take(now+int64(w)-1) == 0 {
			t.Fatalf("%v: allowed before the wait it named", l)
		}
		if b.take(now+int64(w)) != 0 {
			t.Fatalf("%v: refused after the wait it named", l)
		}
		// A full period later the bucket is full again.
		now += int64(l.Period) + int64(w)
		for i := int64(0); i < l.N; i++ {
			if w := b.take(now); w != 0 {
				t.Fatalf("%v: after refill, take %d refused", l, i+1)
			}
		}
		if b.take(now) == 0 {
			t.Fatalf("%v: after refill, take %d allowed", l, l.N+1)
		}
	}
}

func TestParseMethods(t *testing.T) {
	tests := []struct {
		in      string
		want    Methods
		wantErr bool
	}{
		{in: "apikey", want: MethodAPIKey},
		{in: "hmac", want: MethodHMAC},
		{in: "jwt", want: MethodJWT},
		{in: "apikey,jwt", want: MethodAPIKey | MethodJWT},
		{in: " apikey , hmac ,jwt", want: AllMethods},
		{in: "jwt,jwt", want: MethodJWT},
		{in: "", wantErr: true},
		{in: "apikey,", wantErr: true},
		{in: "APIKEY", wantErr: true},
		{in: "api_key", wantErr: true},
		{in: "basic", wantErr: true},
		{in: "apikey;jwt", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseMethods(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want && !tt.wantErr {
			t.Errorf("ParseMethods(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if back, err := ParseMethods(got.String()); err != nil || back != got {
				t.Errorf("ParseMethods(%q).String() = %q does not parse back", tt.in, got.String())
			}
		}
	}
	if s := (MethodAPIKey | MethodJWT).String(); s != "apikey,jwt" {
		t.Errorf("String() = %q", s)
	}
}

func TestParsePolicy(t *testing.T) {
	def := Policy{Methods: MethodAPIKey | MethodJWT, Scopes: "read:default"}
	tests := []struct {
		name    string
		ext     map[string]string
		want    Policy
		wantErr string // substring; "" for no error
	}{
		{name: "nil", ext: nil, want: def},
		{name: "others ignored", ext: map[string]string{"route": "x", "keygate": "x", "keygatex.scopes": "?", "my.keygate.scopes": "?"}, want: def},
		{name: "every setting", ext: map[string]string{
			ExtMethods:   "apikey,hmac",
			ExtScopes:    "read:projects, write:projects",
			ExtRoles:     "admin,ops",
			ExtTenant:    "acme-corp",
			ExtAnonymous: "true",
			ExtQueryKey:  "true",
			ExtCookieKey: "session_key",
			ExtKeepJWT:   "true",
		}, want: Policy{
			Methods:   MethodAPIKey | MethodHMAC,
			Scopes:    "read:projects, write:projects",
			Roles:     "admin,ops",
			Tenant:    "acme-corp",
			Anonymous: true,
			QueryKey:  true,
			CookieKey: "session_key",
			KeepJWT:   true,
		}},
		{name: "false bools", ext: map[string]string{ExtAnonymous: "false", ExtQueryKey: "", ExtKeepJWT: "false"}, want: def},
		{name: "bool True", ext: map[string]string{ExtAnonymous: "True"}, wantErr: ExtAnonymous},
		{name: "bool 1", ext: map[string]string{ExtQueryKey: "1"}, wantErr: ExtQueryKey},
		{name: "bool yes", ext: map[string]string{ExtKeepJWT: "yes"}, wantErr: ExtKeepJWT},
		{name: "bool spaces", ext: map[string]string{ExtAnonymous: " true"}, wantErr: ExtAnonymous},
		{name: "unknown keygate setting", ext: map[string]string{"keygate.scope": "read"}, wantErr: `"keygate.scope"`},
		{name: "bare prefix", ext: map[string]string{"keygate.": "x"}, wantErr: `"keygate."`},
		{name: "upper-case typo", ext: map[string]string{"Keygate.Scopes": "admin"}, wantErr: `"Keygate.Scopes"`},
		{name: "bad method", ext: map[string]string{ExtMethods: "apikey,basic"}, wantErr: ExtMethods},
		{name: "empty methods", ext: map[string]string{ExtMethods: ""}, wantErr: ExtMethods},
		{name: "empty scope item", ext: map[string]string{ExtScopes: "read,,write"}, wantErr: ExtScopes},
		{name: "empty scopes", ext: map[string]string{ExtScopes: ""}, wantErr: ExtScopes},
		{name: "scope with space", ext: map[string]string{ExtScopes: "read projects"}, wantErr: ExtScopes},
		{name: "bad role", ext: map[string]string{ExtRoles: "ad\"min"}, wantErr: ExtRoles},
		{name: "bad tenant", ext: map[string]string{ExtTenant: "Acme"}, wantErr: ExtTenant},
		{name: "empty tenant", ext: map[string]string{ExtTenant: ""}, wantErr: ExtTenant},
		{name: "bad cookie", ext: map[string]string{ExtCookieKey: "a;b"}, wantErr: ExtCookieKey},
		{name: "empty cookie", ext: map[string]string{ExtCookieKey: ""}, wantErr: ExtCookieKey},
		{name: "long cookie", ext: map[string]string{ExtCookieKey: strings.Repeat("c", 129)}, wantErr: ExtCookieKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicy(tt.ext, def)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePolicy() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePolicy() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScopeGranted(t *testing.T) {
	tests := []struct {
		granted  []string
		required string
		want     bool
	}{
		{nil, "read", false},
		{[]string{"read"}, "read", true},
		{[]string{"read"}, "read:x", false},
		{[]string{"read:x"}, "read", false},
		{[]string{"read:*"}, "read:projects", true},
		{[]string{"read:*"}, "read:", true},
		{[]string{"read:*"}, "read", false},
		{[]string{"read:*"}, "write:projects", false},
		{[]string{"read*"}, "readers", true},
		{[]string{"*"}, "anything:at:all", true},
		{[]string{"write", "read:*"}, "read:a:b", true},
		{[]string{""}, "read", false},
		{[]string{"read:*x"}, "read:ax", false}, // only a trailing * is a wildcard
		{[]string{"READ:*"}, "read:x", false},
	}
	for _, tt := range tests {
		if got := ScopeGranted(tt.granted, tt.required); got != tt.want {
			t.Errorf("ScopeGranted(%q, %q) = %v, want %v", tt.granted, tt.required, got, tt.want)
		}
	}
}

func TestEachItem(t *testing.T) {
	var got []string
	eachItem(" a, b ,,c,", func(s string) bool { got = append(got, s); return true })
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Errorf("eachItem (-want +got):\n%s", diff)
	}
}

// TestValidTokenMatchesRegexp pins the hand-written check to tokenRE.
func TestValidTokenMatchesRegexp(t *testing.T) {
	for _, s := range []string{"", "a", "read:projects", "read:*", "a b", "a,b", "é", "x/y.z_w-v", strings.Repeat("a", 128), strings.Repeat("a", 129), "\x00", "A:Z", "~"} {
		if got, want := validToken(s), tokenRE.MatchString(s); got != want {
			t.Errorf("validToken(%q) = %v, tokenRE says %v", s, got, want)
		}
	}
}
