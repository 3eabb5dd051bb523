package credentials

import (
	"encoding/base64"
	"time"
)

// HMAC signature schemes (SPEC §2, §3).
const (
	// SchemeRFC9421 is RFC 9421 HTTP Message Signatures with
	// alg="hmac-sha256": the default for new keys.
	SchemeRFC9421 = "rfc9421"
	// SchemeTimestampBody is the legacy scheme: X-Signature is the hex
	// HMAC-SHA256 of "<X-Timestamp>.<body>", the key chosen by
	// X-Tenant-ID (one active such key per tenant).
	SchemeTimestampBody = "timestamp-body"
)

// HMAC secret sizes, in bytes.
const (
	MinHMACSecret = 32
	MaxHMACSecret = 1024
	// GeneratedHMACSecret is the size of the secrets keygate generates.
	GeneratedHMACSecret = 32
)

// HMACKeyPrefix is the prefix of HMAC key IDs.
const HMACKeyPrefix = "hk_"

// HMACKey is a shared secret a client signs requests with. The secret
// is stored encrypted under the master key and never returned, except
// once by the create that generated it.
type HMACKey struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id,omitempty"`
	Name     string `json:"name,omitempty"`
	// Scheme is SchemeRFC9421 (default) or SchemeTimestampBody.
	Scheme string `json:"scheme,omitempty"`
	// Secret is the standard base64 of the secret bytes: input (and the
	// one answer of a create that generated it) only.
	Secret    string     `json:"secret,omitempty"`
	Scopes    []string   `json:"scopes,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Disabled  bool       `json:"disabled,omitempty"`
	CreatedAt time.Time  `json:"created_at,omitzero"`
	UpdatedAt time.Time  `json:"updated_at,omitzero"`
}

// SecretBytes decodes Secret. It is only meaningful after Normalize
// accepted a key with a secret.
func (k *HMACKey) SecretBytes() []byte {
	b, _ := base64.StdEncoding.DecodeString(k.Secret)
	return b
}

// Normalize validates the key and fills defaults (scheme). A key without
// a secret is accepted only when keepSecret is set: an update that keeps
// the stored secret (the store refuses it when there is none).
func (k *HMACKey) Normalize(field string, keepSecret bool) error {
	if err := ValidateID(HMACKeyPrefix, k.ID, join(field, "id")); err != nil {
		return err
	}
	if k.ClientID != "" {
		if err := ValidateID(ClientPrefix, k.ClientID, join(field, "client_id")); err != nil {
			return err
		}
	}
	switch k.Scheme {
	case "":
		k.Scheme = SchemeRFC9421
	case SchemeRFC9421, SchemeTimestampBody:
	default:
		return FieldError(join(field, "scheme"), "%q is not %s or %s", k.Scheme, SchemeRFC9421, SchemeTimestampBody)
	}
	switch {
	case k.Secret != "":
		b, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return FieldError(join(field, "secret"), "must be standard base64 of the secret bytes")
		}
		if len(b) < MinHMACSecret || len(b) > MaxHMACSecret {
			return FieldError(join(field, "secret"), "the secret is %d bytes: it must be %d to %d", len(b), MinHMACSecret, MaxHMACSecret)
		}
	case !keepSecret:
		return FieldError(join(field, "secret"), "required (standard base64 of at least %d bytes)", MinHMACSecret)
	}
	if len(k.Name) > 200 {
		return FieldError(join(field, "name"), "longer than 200 characters")
	}
	return validateTokens(k.Scopes, join(field, "scopes"))
}

// Redacted returns a copy of k without its secret.
func (k *HMACKey) Redacted() HMACKey {
	c := *k
	c.Secret = ""
	return c
}
