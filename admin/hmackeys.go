package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"

	"github.com/keygate/keygate/credentials"
)

// The answers of the HMAC key routes. A key's Secret is empty in every
// answer except that of a create or rotate that generated it.
type (
	hmacKeyResult struct {
		credentials.HMACKey
		Revision uint64 `json:"revision"`
	}
	hmacKeyList struct {
		Revision uint64                `json:"revision"`
		HMACKeys []credentials.HMACKey `json:"hmackeys"`
	}
)

// generateHMACSecret returns credentials.GeneratedHMACSecret random bytes
// from crypto/rand as standard base64.
func generateHMACSecret() string {
	b := make([]byte, credentials.GeneratedHMACSecret)
	rand.Read(b) // never fails (Go 1.24+: crashes the program instead)
	return base64.StdEncoding.EncodeToString(b)
}

// hmacSecrets returns the secrets in ks, to scrub from error messages.
func hmacSecrets(ks []credentials.HMACKey) []string {
	var out []string
	for _, k := range ks {
		if k.Secret != "" {
			out = append(out, k.Secret)
		}
	}
	return out
}

// redactedHMACKeys returns ks without secrets. The store already returns
// keys without them; this keeps the promise even if a store does not.
func redactedHMACKeys(ks []credentials.HMACKey) []credentials.HMACKey {
	out := make([]credentials.HMACKey, len(ks))
	for i := range ks {
		out[i] = ks[i].Redacted()
	}
	return out
}

func (h *Handler) listHMACKeys(w http.ResponseWriter, r *http.Request) error {
	return h.writeHMACKeys(w, r, "")
}

func (h *Handler) listClientHMACKeys(w http.ResponseWriter, r *http.Request) error {
	id, err := h.pathClient(r)
	if err != nil {
		return err
	}
	return h.writeHMACKeys(w, r, id)
}

func (h *Handler) writeHMACKeys(w http.ResponseWriter, r *http.Request, clientID string) error {
	return h.answerRead(w, r, func(ctx context.Context, rev uint64) (any, error) {
		ks, err := h.store.HMACKeys(ctx, clientID)
		return hmacKeyList{Revision: rev, HMACKeys: redactedHMACKeys(ks)}, err
	})
}

func (h *Handler) getHMACKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, credentials.HMACKeyPrefix, "HMAC key")
	if err != nil {
		return err
	}
	return h.answerRead(w, r, func(ctx context.Context, _ uint64) (any, error) {
		k, err := h.store.HMACKey(ctx, id)
		if err != nil {
			return nil, err
		}
		return k.Redacted(), nil
	})
}

// createHMACKey creates an HMAC key of the client in the path. Without a
// secret in the body keygate generates one and answers it, once; a
// secret given by the caller (an import) is never echoed.
func (h *Handler) createHMACKey(w http.ResponseWriter, r *http.Request) error {
	var k credentials.HMACKey
	if err := h.readJSON(w, r, &k, true); err != nil {
		return err
	}
	secrets := []string{k.Secret}
	if err := h.bodyClient(r, &k.ClientID); err != nil {
		return err
	}
	if k.ID == "" {
		k.ID = newID(credentials.HMACKeyPrefix)
	}
	var generated string
	if k.Secret == "" {
		generated = generateHMACSecret()
		k.Secret = generated
		secrets = append(secrets, generated)
	}
	if err := k.Normalize("", false); err != nil {
		return scrub(err, secrets)
	}
	// A create must not replace a key: the store checks that (conflict)
	// in the transaction that writes it.
	res, err := h.apply(r, &credentials.Changes{HMACKeys: []credentials.HMACKey{k}, Create: true})
	if err != nil {
		return scrub(err, secrets)
	}
	stored, err := h.store.HMACKey(r.Context(), k.ID)
	if err != nil {
		return err
	}
	out := stored.Redacted()
	out.Secret = generated
	return h.answerWrite(w, http.StatusCreated, res.Revision, "/v1/hmackeys/"+k.ID, hmacKeyResult{out, res.Revision})
}

// putHMACKey creates or replaces an HMAC key. client_id is required for a
// new key (with a secret); an existing key cannot change client and keeps
// its stored secret when the body has none.
func (h *Handler) putHMACKey(w http.ResponseWriter, r *http.Request) error {
	var k credentials.HMACKey
	if err := h.readJSON(w, r, &k, false); err != nil {
		return err
	}
	secrets := []string{k.Secret}
	if err := fromPath(&k.ID, r.PathValue("id"), "id", "does not match the ID in the path"); err != nil {
		return err
	}
	if err := credentials.ValidateID(credentials.HMACKeyPrefix, k.ID, "id"); err != nil {
		return err
	}
	exists := false
	old, err := h.store.HMACKey(r.Context(), k.ID)
	switch {
	case err == nil:
		exists = true
		if err := fromPath(&k.ClientID, old.ClientID, "client_id", "an HMAC key cannot move to another client"); err != nil {
			return err
		}
	case credentials.ErrorCode(err) == credentials.ENotFound:
		if k.ClientID == "" {
			return credentials.FieldError("client_id", "required for a new HMAC key")
		}
	default:
		return err
	}
	if err := k.Normalize("", exists); err != nil {
		return scrub(err, secrets)
	}
	res, err := h.apply(r, &credentials.Changes{HMACKeys: []credentials.HMACKey{k}})
	if err != nil {
		return scrub(err, secrets)
	}
	stored, err := h.store.HMACKey(r.Context(), k.ID)
	if err != nil {
		return err
	}
	return h.answerWrite(w, http.StatusOK, res.Revision, "", hmacKeyResult{stored.Redacted(), res.Revision})
}

func (h *Handler) deleteHMACKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, credentials.HMACKeyPrefix, "HMAC key")
	if err != nil {
		return err
	}
	return h.applyResult(w, r, &credentials.Changes{DeleteHMACKeys: []string{id}}, nil)
}

// rotateHMACKey gives key id a new generated secret, in place: the ID
// (the keyid clients send) stays, the old secret stops working with the
// commit. The answer carries the new secret, once.
func (h *Handler) rotateHMACKey(w http.ResponseWriter, r *http.Request) error {
	var empty struct{}
	if err := h.readJSON(w, r, &empty, true); err != nil {
		return err
	}
	id, err := pathID(r, credentials.HMACKeyPrefix, "HMAC key")
	if err != nil {
		return err
	}
	old, err := h.store.HMACKey(r.Context(), id)
	if err != nil {
		return err
	}
	k := old.Redacted()
	secret := generateHMACSecret()
	k.Secret = secret
	if err := k.Normalize("", false); err != nil {
		return scrub(err, []string{secret})
	}
	res, err := h.apply(r, &credentials.Changes{HMACKeys: []credentials.HMACKey{k}})
	if err != nil {
		return scrub(err, []string{secret})
	}
	stored, err := h.store.HMACKey(r.Context(), id)
	if err != nil {
		return err
	}
	out := stored.Redacted()
	out.Secret = secret
	return h.answerWrite(w, http.StatusOK, res.Revision, "", hmacKeyResult{out, res.Revision})
}
