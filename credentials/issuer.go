package credentials

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Issuer is a JWT issuer trusted by one tenant (SPEC §2, §7).
//
// Keys are inline (JWKS) or fetched from JWKSURI. HS* keys are oct JWKs:
// secrets, stored encrypted and never returned (JWK.K is empty on
// output).
type Issuer struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	// Issuer is the iss value tokens must carry; empty matches tokens
	// without iss (only for inline keys).
	Issuer     string   `json:"issuer,omitempty"`
	Audiences  []string `json:"audiences,omitempty"`
	Algorithms []string `json:"algorithms"`
	JWKS       *JWKS    `json:"jwks,omitempty"`
	JWKSURI    string   `json:"jwks_uri,omitempty"`
	// JWKSRefresh is how often JWKSURI is fetched (default 15m).
	JWKSRefresh Duration `json:"jwks_refresh,omitempty"`
	// Leeway is the clock skew allowed for exp, nbf and iat (at most 60s).
	Leeway Duration `json:"leeway,omitempty"`
	// TenantClaim, when set, names a claim that must equal Tenant.
	TenantClaim string `json:"tenant_claim,omitempty"`
	// SubjectClaim names the claim of x-auth-subject (default "sub").
	SubjectClaim string `json:"subject_claim,omitempty"`
	// RolesClaim names the claim holding the roles (array or
	// space-separated string); "a.b" also finds {"a": {"b": ...}}.
	RolesClaim string `json:"roles_claim,omitempty"`
	// RequiredClaims are claims that must have exactly these values
	// (strings, numbers or booleans), e.g. {"token_type": "access"}.
	RequiredClaims map[string]any `json:"required_claims,omitempty"`
	Disabled       bool           `json:"disabled,omitempty"`
	CreatedAt      time.Time      `json:"created_at,omitzero"`
	UpdatedAt      time.Time      `json:"updated_at,omitzero"`
}

// ID returns "tenant/name", the issuer's ID in change batches and logs.
func (is *Issuer) ID() string { return is.Tenant + "/" + is.Name }

// JWKS is a JSON Web Key Set (RFC 7517 §5).
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWK is a public JSON Web Key (RFC 7517), or an oct key for HS*.
// Members keygate does not use (x5c, x5t, key_ops, ...) are accepted and
// dropped; private-key members are refused.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	Crv string `json:"crv,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	// K is the secret of an oct key (base64url): input only, encrypted at
	// rest and never returned.
	K string `json:"k,omitempty"`
}

// privateJWKMembers are the RFC 7518 private-key members.
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth"}

// UnmarshalJSON decodes a JWK, dropping members keygate does not use and
// refusing private-key members.
func (k *JWK) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("a JWK must be a JSON object")
	}
	for _, p := range privateJWKMembers {
		if _, ok := m[p]; ok {
			return FieldError(p, "private key member: give public keys only")
		}
	}
	*k = JWK{}
	for name, dst := range map[string]*string{"kty": &k.Kty, "kid": &k.Kid, "alg": &k.Alg, "use": &k.Use,
		"crv": &k.Crv, "n": &k.N, "e": &k.E, "x": &k.X, "y": &k.Y, "k": &k.K} {
		raw, ok := m[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return FieldError(name, "must be a string")
		}
	}
	return nil
}

// Revocation denylists one JWT ID until it expires (SPEC §2).
type Revocation struct {
	JTI       string    `json:"jti"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Validate checks the revocation; field prefixes the field names in errors.
func (r *Revocation) Validate(field string) error {
	if r.JTI == "" || len(r.JTI) > 256 || !printable(r.JTI) {
		return FieldError(join(field, "jti"), "must be 1-256 printable ASCII characters")
	}
	if r.ExpiresAt.IsZero() {
		return FieldError(join(field, "expires_at"), "required (the token's exp: the revocation is dropped after it)")
	}
	return nil
}

// Duration is a time.Duration that is a Go duration string in JSON ("30s").
type Duration time.Duration

// MarshalJSON encodes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON decodes a Go duration string ("30s", "1m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\"", s)
	}
	*d = Duration(v)
	return nil
}

// Limits of issuer settings.
const (
	MaxLeeway          = 60 * time.Second
	DefaultJWKSRefresh = 15 * time.Minute
	MinJWKSRefresh     = time.Minute
	MaxJWKSRefresh     = 24 * time.Hour
)

// JWT algorithms keygate verifies, by key family.
var algFamilies = map[string]keyFamily{
	"HS256": famOct, "HS384": famOct, "HS512": famOct,
	"RS256": famRSA, "RS384": famRSA, "RS512": famRSA,
	"PS256": famRSA, "PS384": famRSA, "PS512": famRSA,
	"ES256": famP256, "ES384": famP384, "ES512": famP521,
	"EdDSA": famEd25519,
}

// SupportedAlgorithms lists the JWT algorithms an issuer may allow.
var SupportedAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

var (
	issuerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	claimNameRE  = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
)

// ValidIssuerName reports whether s is a valid issuer name.
func ValidIssuerName(s string) bool { return issuerNameRE.MatchString(s) }

// ParseIssuerID splits "tenant/name" and validates both halves.
func ParseIssuerID(id, field string) (tenant, name string, err error) {
	tenant, name, ok := strings.Cut(id, "/")
	if !ok || !slugRE.MatchString(tenant) || !issuerNameRE.MatchString(name) {
		return "", "", FieldError(field, "%q is not \"<tenant>/<issuer name>\"", id)
	}
	return tenant, name, nil
}

// Validate checks the issuer; field prefixes the field names in errors.
// Inline keys must parse, fit the allowlist and (oct) carry their secret
// unless keepSecrets is set (an update that keeps stored secrets: an oct
// key without k then names the stored key of the same kid, "" included;
// the store resolves it).
func (is *Issuer) Validate(field string, keepSecrets bool) error {
	if !slugRE.MatchString(is.Tenant) {
		return FieldError(join(field, "tenant"), "must be a tenant slug")
	}
	if !issuerNameRE.MatchString(is.Name) {
		return FieldError(join(field, "name"), "must match ^[a-z0-9][a-z0-9._-]{0,62}$")
	}
	if len(is.Issuer) > 1024 || !printable(is.Issuer) {
		return FieldError(join(field, "issuer"), "must be at most 1024 printable ASCII characters")
	}
	if len(is.Algorithms) == 0 {
		return FieldError(join(field, "algorithms"), "required: the algorithms this issuer signs with, e.g. [\"RS256\"]")
	}
	for i, a := range is.Algorithms {
		if _, ok := algFamilies[a]; !ok {
			return FieldError(fmt.Sprintf("%s[%d]", join(field, "algorithms"), i),
				"%q is not one of %s", a, strings.Join(SupportedAlgorithms, ", "))
		}
	}
	for i, a := range is.Audiences {
		if a == "" || len(a) > 1024 || !printable(a) {
			return FieldError(fmt.Sprintf("%s[%d]", join(field, "audiences"), i), "must be 1-1024 printable ASCII characters")
		}
	}
	switch {
	case is.JWKS == nil && is.JWKSURI == "":
		return FieldError(join(field, "jwks"), "required: inline jwks or jwks_uri")
	case is.JWKS != nil && is.JWKSURI != "":
		return FieldError(join(field, "jwks_uri"), "give either jwks or jwks_uri, not both")
	case is.JWKSURI != "":
		if err := checkJWKSURI(is.JWKSURI); err != nil {
			return FieldError(join(field, "jwks_uri"), "%v", err)
		}
		if is.Issuer == "" {
			return FieldError(join(field, "issuer"), "required when keys come from jwks_uri")
		}
		for _, a := range is.Algorithms {
			if algFamilies[a] == famOct {
				return FieldError(join(field, "algorithms"), "%s needs a shared secret: give it as an inline oct key, not through jwks_uri", a)
			}
		}
	default:
		// An empty key list is allowed (the SPEC's example has one): such
		// an issuer accepts no token until keys are added.
		if len(is.JWKS.Keys) > 100 {
			return FieldError(join(field, "jwks.keys"), "at most 100 keys")
		}
		for i := range is.JWKS.Keys {
			k := &is.JWKS.Keys[i]
			kf := fmt.Sprintf("%s[%d]", join(field, "jwks.keys"), i)
			if keepSecrets && k.Kty == "oct" && k.K == "" {
				continue // the store keeps the stored secret of this kid, or refuses
			}
			pk, err := parseJWK(k)
			if err != nil {
				return FieldError(kf, "%v", err)
			}
			if !pk.fitsAny(is.Algorithms) {
				return FieldError(kf, "a %s key fits none of the issuer's algorithms %s", pk.family, strings.Join(is.Algorithms, ","))
			}
		}
	}
	if is.JWKSRefresh != 0 && (time.Duration(is.JWKSRefresh) < MinJWKSRefresh || time.Duration(is.JWKSRefresh) > MaxJWKSRefresh) {
		return FieldError(join(field, "jwks_refresh"), "must be between %v and %v", MinJWKSRefresh, MaxJWKSRefresh)
	}
	if is.Leeway < 0 || time.Duration(is.Leeway) > MaxLeeway {
		return FieldError(join(field, "leeway"), "must be between 0s and %v", MaxLeeway)
	}
	for name, v := range map[string]string{"tenant_claim": is.TenantClaim, "subject_claim": is.SubjectClaim, "roles_claim": is.RolesClaim} {
		if v != "" && !claimNameRE.MatchString(v) {
			return FieldError(join(field, name), "must be 1-128 printable ASCII characters without spaces")
		}
	}
	for name, v := range is.RequiredClaims {
		f := join(field, "required_claims") + "." + name
		if !claimNameRE.MatchString(name) {
			return FieldError(f, "claim names are 1-128 printable ASCII characters without spaces")
		}
		switch v := v.(type) {
		case string, bool:
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return FieldError(f, "must be a finite number")
			}
		case json.Number:
			if _, err := strconv.ParseFloat(string(v), 64); err != nil {
				return FieldError(f, "must be a number")
			}
		default:
			return FieldError(f, "must be a string, number or boolean (compared exactly)")
		}
	}
	return nil
}

// Normalize validates the issuer (see Validate) and fills defaults.
func (is *Issuer) Normalize(field string, keepSecrets bool) error {
	if err := is.Validate(field, keepSecrets); err != nil {
		return err
	}
	if is.JWKSURI != "" && is.JWKSRefresh == 0 {
		is.JWKSRefresh = Duration(DefaultJWKSRefresh)
	}
	return nil
}

// Redacted returns a copy of is without the secrets of its oct keys.
func (is *Issuer) Redacted() Issuer {
	c := *is
	if is.JWKS != nil {
		keys := make([]JWK, len(is.JWKS.Keys))
		copy(keys, is.JWKS.Keys)
		for i := range keys {
			keys[i].K = ""
		}
		c.JWKS = &JWKS{Keys: keys}
	}
	return c
}

// HasSecrets reports whether is holds oct (HS*) keys, which are secrets.
func (is *Issuer) HasSecrets() bool {
	if is.JWKS == nil {
		return false
	}
	for i := range is.JWKS.Keys {
		if is.JWKS.Keys[i].Kty == "oct" {
			return true
		}
	}
	return false
}

func checkJWKSURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("scheme must be https (or http), not %q", u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials")
	}
	if len(s) > 2048 {
		return fmt.Errorf("longer than 2048 characters")
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
