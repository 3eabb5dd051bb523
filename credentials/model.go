package credentials

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Tenant is an isolated customer of the services behind keygate.
type Tenant struct {
	Slug        string    `json:"slug"`
	DisplayName string    `json:"display_name,omitempty"`
	Disabled    bool      `json:"disabled,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// Client is the principal that credentials belong to.
type Client struct {
	ID           string    `json:"id"`
	Tenant       string    `json:"tenant"`
	Name         string    `json:"name,omitempty"`
	Description  string    `json:"description,omitempty"`
	Roles        []string  `json:"roles,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`
	AllowedCIDRs []string  `json:"allowed_cidrs,omitempty"`
	RateLimit    string    `json:"rate_limit,omitempty"`
	Disabled     bool      `json:"disabled,omitempty"`
	TokenVersion int64     `json:"token_version,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
}

// APIKey is a stored API key. Only the SHA-256 digest of the key is kept.
//
// Key is input only: a plaintext key to import, hashed at once by
// Normalize and never stored or returned.
type APIKey struct {
	ID         string     `json:"id"`
	ClientID   string     `json:"client_id,omitempty"`
	Name       string     `json:"name,omitempty"`
	KeySHA256  string     `json:"key_sha256,omitempty"`
	Key        string     `json:"key,omitempty"`
	Scopes     []string   `json:"scopes,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Disabled   bool       `json:"disabled,omitempty"`
	CreatedAt  time.Time  `json:"created_at,omitzero"`
	UpdatedAt  time.Time  `json:"updated_at,omitzero"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	LastUsedIP string     `json:"last_used_ip,omitempty"`
}

// Sum returns the key's SHA-256 digest. It is only meaningful after
// Validate or Normalize succeeded.
func (k *APIKey) Sum() (sum [32]byte) {
	hex.Decode(sum[:], []byte(k.KeySHA256))
	return sum
}

// Snapshot is the declarative document of the admin API (PUT /v1/snapshot,
// the upsert half of POST /v1/changes, `keygate apply -f`): API keys nest
// under their client.
//
// Issuers are replaced like the other records; revocations are additive:
// a snapshot adds to the denylist and never removes from it (entries leave
// it when they expire), so re-applying an older document cannot un-revoke
// a token.
type Snapshot struct {
	Tenants     []Tenant         `json:"tenants,omitempty"`
	Clients     []SnapshotClient `json:"clients,omitempty"`
	Issuers     []Issuer         `json:"issuers,omitempty"`
	Revocations []Revocation     `json:"revocations,omitempty"`
}

// SnapshotClient is a client with, optionally, its API keys. A nil APIKeys
// leaves the client's keys as they are (in a change batch); a non-nil one
// replaces them.
//
// HMACKeys work the same way for the client's HMAC keys. A secret left
// out of an HMAC key keeps the stored one (secrets are never returned, so
// an exported snapshot has none).
type SnapshotClient struct {
	Client
	APIKeys  *[]APIKey  `json:"apikeys,omitempty"`
	HMACKeys *[]HMACKey `json:"hmackeys,omitempty"`
}

// Deletes lists what a change batch deletes, by ID.
type Deletes struct {
	Tenants  []string `json:"tenants,omitempty"`
	Clients  []string `json:"clients,omitempty"`
	APIKeys  []string `json:"apikeys,omitempty"`
	HMACKeys []string `json:"hmackeys,omitempty"`
	// Issuers are "<tenant>/<name>".
	Issuers []string `json:"issuers,omitempty"`
}

// ChangeBatch is the body of POST /v1/changes.
type ChangeBatch struct {
	Upsert Snapshot `json:"upsert"`
	Delete Deletes  `json:"delete"`
}

// Changes is what a store applies in one transaction. Records in the
// upsert lists replace stored ones with the same ID (server-managed fields
// such as CreatedAt and TokenVersion are kept by the store).
type Changes struct {
	// Replace makes the upserts the whole new state: anything not in
	// them is deleted (PUT /v1/snapshot).
	Replace bool

	Tenants []Tenant
	Clients []Client
	APIKeys []APIKey
	// ReplaceKeysOf lists clients whose keys not named in APIKeys are deleted.
	ReplaceKeysOf []string
	// HMACKeys are upserted whole; one without Secret keeps the stored
	// secret (the store refuses it as invalid when there is none). A
	// tenant has at most one enabled timestamp-body key (invalid
	// otherwise).
	HMACKeys []HMACKey
	// ReplaceHMACKeysOf lists clients whose HMAC keys not named in
	// HMACKeys are deleted.
	ReplaceHMACKeysOf []string
	// Create requires the upserted clients and API keys not to exist yet
	// (a POST on a collection): the store refuses with conflict otherwise,
	// checked in the same transaction as the write.
	Create bool

	// Issuers are upserted whole. An oct key given without k (secrets
	// are never returned, so a read-modify-write has none) keeps the
	// secret of the stored key of the same issuer with the same kid; the
	// store refuses it (invalid) when there is no such key.
	Issuers []Issuer
	// Revocations are added to the denylist (an existing jti gets the
	// later of the two expiries); never removed by Replace.
	Revocations []Revocation
	// RevokeTokensOf lists clients whose token_version is incremented
	// (POST /v1/clients/{id}/revoke-tokens). Returns not_found for an
	// unknown client.
	RevokeTokensOf []string

	DeleteTenants  []string
	DeleteClients  []string // cascades to their API keys
	DeleteAPIKeys  []string
	DeleteHMACKeys []string
	DeleteIssuers  []string // "<tenant>/<name>"
}

// Empty reports whether c changes nothing.
func (c *Changes) Empty() bool {
	return !c.Replace && len(c.Tenants)+len(c.Clients)+len(c.APIKeys)+len(c.ReplaceKeysOf)+
		len(c.HMACKeys)+len(c.ReplaceHMACKeysOf)+len(c.Issuers)+len(c.Revocations)+len(c.RevokeTokensOf)+
		len(c.DeleteTenants)+len(c.DeleteClients)+len(c.DeleteAPIKeys)+len(c.DeleteHMACKeys)+len(c.DeleteIssuers) == 0
}

// Changes validates the snapshot and flattens it into normalized Changes
// (plaintext keys hashed and cleared). s itself is not modified: its
// plaintext keys stay, so callers can scrub them from errors. Field paths
// in errors follow the document, e.g. "clients[3].apikeys[0].key_sha256".
func (s *Snapshot) Changes(replace bool) (*Changes, error) {
	return s.changes(replace, "")
}

func (s *Snapshot) changes(replace bool, prefix string) (*Changes, error) {
	c := &Changes{Replace: replace}
	seenT := make(map[string]bool, len(s.Tenants))
	for i := range s.Tenants {
		t := s.Tenants[i]
		p := fmt.Sprintf("%stenants[%d]", prefix, i)
		if err := t.Validate(p); err != nil {
			return nil, err
		}
		if seenT[t.Slug] {
			return nil, FieldError(p+".slug", "duplicate tenant %q", t.Slug)
		}
		seenT[t.Slug] = true
		c.Tenants = append(c.Tenants, t)
	}
	seenC := make(map[string]bool, len(s.Clients))
	seenK := make(map[string]bool)
	seenSum := make(map[string]string)
	for i := range s.Clients {
		sc := &s.Clients[i]
		p := fmt.Sprintf("%sclients[%d]", prefix, i)
		cl := sc.Client
		if err := cl.Validate(p); err != nil {
			return nil, err
		}
		if seenC[cl.ID] {
			return nil, FieldError(p+".id", "duplicate client %q", cl.ID)
		}
		seenC[cl.ID] = true
		if replace && !seenT[cl.Tenant] {
			return nil, FieldError(p+".tenant", "tenant %q is not in the snapshot", cl.Tenant)
		}
		c.Clients = append(c.Clients, cl)
		if sc.HMACKeys != nil {
			c.ReplaceHMACKeysOf = append(c.ReplaceHMACKeysOf, cl.ID)
			for j, k := range *sc.HMACKeys {
				kp := fmt.Sprintf("%s.hmackeys[%d]", p, j)
				if k.ClientID != "" && k.ClientID != cl.ID {
					return nil, FieldError(kp+".client_id", "key nested under client %q names client %q", cl.ID, k.ClientID)
				}
				k.ClientID = cl.ID
				if err := k.Normalize(kp, true); err != nil {
					return nil, err
				}
				if seenK[k.ID] {
					return nil, FieldError(kp+".id", "duplicate HMAC key %q", k.ID)
				}
				seenK[k.ID] = true
				c.HMACKeys = append(c.HMACKeys, k)
			}
		}
		if sc.APIKeys == nil {
			continue
		}
		c.ReplaceKeysOf = append(c.ReplaceKeysOf, cl.ID)
		for j, k := range *sc.APIKeys {
			kp := fmt.Sprintf("%s.apikeys[%d]", p, j)
			if k.ClientID != "" && k.ClientID != cl.ID {
				return nil, FieldError(kp+".client_id", "key nested under client %q names client %q", cl.ID, k.ClientID)
			}
			k.ClientID = cl.ID
			if err := k.Normalize(kp); err != nil {
				return nil, err
			}
			if seenK[k.ID] {
				return nil, FieldError(kp+".id", "duplicate API key %q", k.ID)
			}
			seenK[k.ID] = true
			if other, dup := seenSum[k.KeySHA256]; dup {
				return nil, FieldError(kp+".key_sha256", "same key as API key %q", other)
			}
			seenSum[k.KeySHA256] = k.ID
			c.APIKeys = append(c.APIKeys, k)
		}
	}
	seenI := make(map[string]bool, len(s.Issuers))
	for i := range s.Issuers {
		is := s.Issuers[i]
		p := fmt.Sprintf("%sissuers[%d]", prefix, i)
		if err := is.Normalize(p, true); err != nil {
			return nil, err
		}
		if seenI[is.ID()] {
			return nil, FieldError(p+".name", "duplicate issuer %q", is.ID())
		}
		seenI[is.ID()] = true
		if replace && !seenT[is.Tenant] {
			return nil, FieldError(p+".tenant", "tenant %q is not in the snapshot", is.Tenant)
		}
		if is.JWKS != nil { // the caller's document keeps its own key list
			is.JWKS = &JWKS{Keys: append([]JWK(nil), is.JWKS.Keys...)}
		}
		c.Issuers = append(c.Issuers, is)
	}
	seenR := make(map[string]bool, len(s.Revocations))
	for i := range s.Revocations {
		r := s.Revocations[i]
		p := fmt.Sprintf("%srevocations[%d]", prefix, i)
		if err := r.Validate(p); err != nil {
			return nil, err
		}
		if seenR[r.JTI] {
			return nil, FieldError(p+".jti", "duplicate jti")
		}
		seenR[r.JTI] = true
		c.Revocations = append(c.Revocations, r)
	}
	return c, nil
}

// Changes validates the batch and flattens it into Changes.
func (b *ChangeBatch) Changes() (*Changes, error) {
	c, err := b.Upsert.changes(false, "upsert.")
	if err != nil {
		return nil, err
	}
	for i, id := range b.Delete.Tenants {
		if !slugRE.MatchString(id) {
			return nil, FieldError(fmt.Sprintf("delete.tenants[%d]", i), "invalid tenant slug")
		}
	}
	for i, id := range b.Delete.Clients {
		if err := ValidateID(ClientPrefix, id, fmt.Sprintf("delete.clients[%d]", i)); err != nil {
			return nil, err
		}
	}
	for i, id := range b.Delete.APIKeys {
		if err := ValidateID(APIKeyPrefix, id, fmt.Sprintf("delete.apikeys[%d]", i)); err != nil {
			return nil, err
		}
	}
	for i, id := range b.Delete.HMACKeys {
		if err := ValidateID(HMACKeyPrefix, id, fmt.Sprintf("delete.hmackeys[%d]", i)); err != nil {
			return nil, err
		}
	}
	c.DeleteHMACKeys = b.Delete.HMACKeys
	for i, id := range b.Delete.Issuers {
		if _, _, err := ParseIssuerID(id, fmt.Sprintf("delete.issuers[%d]", i)); err != nil {
			return nil, err
		}
	}
	c.DeleteIssuers = b.Delete.Issuers
	c.DeleteTenants = b.Delete.Tenants
	c.DeleteClients = b.Delete.Clients
	c.DeleteAPIKeys = b.Delete.APIKeys
	return c, nil
}

// ID prefixes.
const (
	ClientPrefix = "cl_"
	APIKeyPrefix = "ak_"
)

var (
	slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// scopeRE and roleRE: printable, no separators used by headers or policy.
	tokenRE = regexp.MustCompile(`^[A-Za-z0-9:._/*-]{1,128}$`)
)

// validToken reports whether s is a scope or role name: 1-128 of
// [A-Za-z0-9:._/*-]. It is tokenRE without the regexp engine, because
// route policies are checked on every Check.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == ':' || c == '.' || c == '_' || c == '/' || c == '*' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateID checks an ID such as "cl_datasync": the prefix, then 1-64 of
// [A-Za-z0-9_-].
func ValidateID(prefix, id, field string) error {
	if !strings.HasPrefix(id, prefix) || !idRE.MatchString(id[len(prefix):]) {
		return FieldError(field, "must be %q followed by 1-64 of [A-Za-z0-9_-]", prefix)
	}
	return nil
}

// ValidSlug reports whether s is a valid tenant slug.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// Validate checks the tenant; field prefixes the field names in errors.
func (t *Tenant) Validate(field string) error {
	if !slugRE.MatchString(t.Slug) {
		return FieldError(join(field, "slug"), "must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	if len(t.DisplayName) > 200 {
		return FieldError(join(field, "display_name"), "longer than 200 characters")
	}
	return nil
}

// Validate checks the client; field prefixes the field names in errors.
func (c *Client) Validate(field string) error {
	if err := ValidateID(ClientPrefix, c.ID, join(field, "id")); err != nil {
		return err
	}
	if !slugRE.MatchString(c.Tenant) {
		return FieldError(join(field, "tenant"), "must be a tenant slug")
	}
	if len(c.Name) > 200 {
		return FieldError(join(field, "name"), "longer than 200 characters")
	}
	if len(c.Description) > 2000 {
		return FieldError(join(field, "description"), "longer than 2000 characters")
	}
	if err := validateTokens(c.Roles, join(field, "roles")); err != nil {
		return err
	}
	if err := validateTokens(c.Scopes, join(field, "scopes")); err != nil {
		return err
	}
	for i, s := range c.AllowedCIDRs {
		if _, err := ParseCIDR(s); err != nil {
			return FieldError(fmt.Sprintf("%s[%d]", join(field, "allowed_cidrs"), i), "%v", err)
		}
	}
	if c.RateLimit != "" {
		if _, err := ParseRateLimit(c.RateLimit); err != nil {
			return FieldError(join(field, "rate_limit"), "%v", err)
		}
	}
	if c.TokenVersion < 0 {
		return FieldError(join(field, "token_version"), "must not be negative")
	}
	return nil
}

// Normalize validates the key and replaces a plaintext Key by its digest.
func (k *APIKey) Normalize(field string) error {
	if err := ValidateID(APIKeyPrefix, k.ID, join(field, "id")); err != nil {
		return err
	}
	if k.ClientID != "" {
		if err := ValidateID(ClientPrefix, k.ClientID, join(field, "client_id")); err != nil {
			return err
		}
	}
	switch {
	case k.Key != "" && k.KeySHA256 != "":
		return FieldError(join(field, "key"), "give either key or key_sha256, not both")
	case k.Key != "":
		if err := CheckImportableKey(k.Key); err != nil {
			return FieldError(join(field, "key"), "%v", err)
		}
		sum := HashKey(k.Key)
		k.KeySHA256 = hex.EncodeToString(sum[:])
		k.Key = ""
	case k.KeySHA256 == "":
		return FieldError(join(field, "key_sha256"), "required (or key to import a plaintext key)")
	}
	k.KeySHA256 = strings.ToLower(k.KeySHA256)
	if !hexRE.MatchString(k.KeySHA256) {
		return FieldError(join(field, "key_sha256"), "must be 64 hex digits (SHA-256)")
	}
	if len(k.Name) > 200 {
		return FieldError(join(field, "name"), "longer than 200 characters")
	}
	if err := validateTokens(k.Scopes, join(field, "scopes")); err != nil {
		return err
	}
	k.LastUsedAt, k.LastUsedIP = nil, ""
	return nil
}

func validateTokens(list []string, field string) error {
	for i, s := range list {
		if !validToken(s) {
			return FieldError(fmt.Sprintf("%s[%d]", field, i), "%q must be 1-128 of [A-Za-z0-9:._/*-]", s)
		}
	}
	return nil
}

// ParseCIDR parses "10.0.0.0/8" or a single address ("10.0.1.5" = /32).
func ParseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// ::ffff:10.0.0.0/104 is 10.0.0.0/8: sources are compared unmapped.
			return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// DecodeStrict decodes JSON into v, refusing unknown fields and trailing data.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Not dec.More, which is false before a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return FieldError("", "trailing data after the JSON document")
	}
	return nil
}

func jsonError(err error) error {
	var ute *json.UnmarshalTypeError
	if e, ok := err.(*json.UnmarshalTypeError); ok {
		ute = e
		return FieldError(ute.Field, "wrong JSON type: got %s, want %s", ute.Value, ute.Type)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		f := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return FieldError(f, "unknown field")
	}
	return &Error{Code: EInvalid, Message: "malformed JSON: " + strings.TrimPrefix(msg, "json: ")}
}
