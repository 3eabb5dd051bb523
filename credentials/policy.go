package credentials

import (
	"fmt"
	"strings"
)

// Methods is a set of authentication methods.
type Methods uint8

// Authentication methods.
const (
	MethodAPIKey Methods = 1 << iota
	MethodHMAC
	MethodJWT
	AllMethods = MethodAPIKey | MethodHMAC | MethodJWT
)

// String returns the method's name as used in x-auth-method.
func (m Methods) String() string {
	switch m {
	case MethodAPIKey:
		return "apikey"
	case MethodHMAC:
		return "hmac"
	case MethodJWT:
		return "jwt"
	}
	var parts []string
	for _, x := range []Methods{MethodAPIKey, MethodHMAC, MethodJWT} {
		if m&x != 0 {
			parts = append(parts, x.String())
		}
	}
	return strings.Join(parts, ",")
}

// ParseMethods parses a comma-separated list of apikey, hmac, jwt.
func ParseMethods(s string) (Methods, error) {
	var m Methods
	for item := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(item) {
		case "apikey":
			m |= MethodAPIKey
		case "hmac":
			m |= MethodHMAC
		case "jwt":
			m |= MethodJWT
		default:
			return 0, fmt.Errorf("unknown method %q (want apikey, hmac or jwt)", strings.TrimSpace(item))
		}
	}
	return m, nil
}

// Route-setting names (Envoy check_settings.context_extensions).
const (
	ExtMethods   = "keygate.methods"
	ExtScopes    = "keygate.scopes"
	ExtRoles     = "keygate.roles"
	ExtTenant    = "keygate.tenant"
	ExtAnonymous = "keygate.anonymous"
	ExtQueryKey  = "keygate.query_key"
	ExtCookieKey = "keygate.cookie_key"
	ExtKeepJWT   = "keygate.keep_jwt"
)

// Policy is what a route requires. Scopes and Roles are kept as the
// comma-separated strings of the route so that parsing a policy on the hot
// path allocates nothing.
type Policy struct {
	Methods   Methods
	Scopes    string // all required; granted scopes may use wildcards ("read:*")
	Roles     string // all required
	Tenant    string // the credential's tenant must be this one
	Anonymous bool   // no credential needed; a presented one is still verified
	QueryKey  bool   // accept ?api_key=
	CookieKey string // accept the API key from this cookie
	KeepJWT   bool   // keep Authorization: Bearer <jwt> for the upstream
}

// DefaultPolicy is the out-of-the-box server policy: any method, no scope.
var DefaultPolicy = Policy{Methods: AllMethods}

// ParsePolicy returns def overridden by the route's keygate.* context
// extensions. Other extensions are ignored; an unknown keygate.* name or a
// bad value is an error, so a typo never opens a route.
func ParsePolicy(ext map[string]string, def Policy) (Policy, error) {
	p := def
	for k, v := range ext {
		if len(k) < 8 || !strings.EqualFold(k[:8], "keygate.") {
			continue // "Keygate.scopes" is a typo to refuse, not to ignore
		}
		switch k {
		case ExtMethods:
			m, err := ParseMethods(v)
			if err != nil {
				return p, fmt.Errorf("%s: %v", k, err)
			}
			p.Methods = m
		case ExtScopes:
			if err := checkList(v); err != nil {
				return p, fmt.Errorf("%s: %v", k, err)
			}
			p.Scopes = v
		case ExtRoles:
			if err := checkList(v); err != nil {
				return p, fmt.Errorf("%s: %v", k, err)
			}
			p.Roles = v
		case ExtTenant:
			if !slugRE.MatchString(v) {
				return p, fmt.Errorf("%s: %q is not a tenant slug", k, v)
			}
			p.Tenant = v
		case ExtAnonymous, ExtQueryKey, ExtKeepJWT:
			b, err := parseBool(v)
			if err != nil {
				return p, fmt.Errorf("%s: %v", k, err)
			}
			switch k {
			case ExtAnonymous:
				p.Anonymous = b
			case ExtQueryKey:
				p.QueryKey = b
			default:
				p.KeepJWT = b
			}
		case ExtCookieKey:
			if !cookieNameOK(v) {
				return p, fmt.Errorf("%s: %q is not a cookie name", k, v)
			}
			p.CookieKey = v
		default:
			return p, fmt.Errorf("unknown route setting %q", k)
		}
	}
	return p, nil
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

// checkList validates a comma-separated list of scopes or roles.
func checkList(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if !validToken(item) {
			return fmt.Errorf("%q is not a comma-separated list of names", v)
		}
	}
	return nil
}

func cookieNameOK(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// eachItem calls f for every trimmed item of a comma-separated list until
// f returns false. It allocates nothing.
func eachItem(list string, f func(string) bool) bool {
	for len(list) > 0 {
		item := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		item = strings.TrimSpace(item)
		if item != "" && !f(item) {
			return false
		}
	}
	return true
}

// ScopeGranted reports whether the required scope is covered by granted,
// where a granted scope "p*" covers every scope starting with "p" ("*"
// covers all).
func ScopeGranted(granted []string, required string) bool {
	for _, g := range granted {
		if g == required {
			return true
		}
		if n := len(g); n > 0 && g[n-1] == '*' && strings.HasPrefix(required, g[:n-1]) {
			return true
		}
	}
	return false
}
