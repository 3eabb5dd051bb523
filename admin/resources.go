package admin

import (
	"context"
	"crypto/rand"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/keygate/keygate/credentials"
)

// NewAPIKey is an API key as answered by create and rotate: Key is the
// plaintext of a generated key, present exactly once, in that answer.
type NewAPIKey struct {
	credentials.APIKey
	Key string `json:"key,omitempty"`
}

// The answers of writes: the stored record with the new revision.
type (
	tenantResult struct {
		credentials.Tenant
		Revision uint64 `json:"revision"`
	}
	clientResult struct {
		credentials.Client
		Revision uint64 `json:"revision"`
	}
	apiKeyResult struct {
		credentials.APIKey
		Revision uint64 `json:"revision"`
	}
	newAPIKeyResult struct {
		NewAPIKey
		Revision uint64 `json:"revision"`
	}
)

// The answers of list reads.
type (
	tenantList struct {
		Revision uint64               `json:"revision"`
		Tenants  []credentials.Tenant `json:"tenants"`
	}
	clientList struct {
		Revision uint64               `json:"revision"`
		Clients  []credentials.Client `json:"clients"`
	}
	apiKeyList struct {
		Revision uint64               `json:"revision"`
		APIKeys  []credentials.APIKey `json:"apikeys"`
	}
)

// rotateRequest is the optional body of POST /v1/apikeys/{id}/rotate.
type rotateRequest struct {
	// Grace is how long the old key keeps working (Go duration); "" or
	// "0s" disables it at once.
	Grace string `json:"grace,omitempty"`
}

const idRandLen = 16

// newID returns prefix followed by 16 random base62 characters.
func newID(prefix string) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, len(prefix)+idRandLen)
	out = append(out, prefix...)
	var buf [32]byte
	for len(out) < cap(out) {
		rand.Read(buf[:])
		for _, c := range buf {
			if c >= 248 { // 4*62: no modulo bias
				continue
			}
			out = append(out, digits[c%62])
			if len(out) == cap(out) {
				break
			}
		}
	}
	return string(out)
}

// revision returns the store's current revision, for ETags of reads. It is
// read before the record, so a stale ETag errs towards a 412.
func (h *Handler) revision(r *http.Request) (uint64, error) {
	st, err := h.store.Status(r.Context())
	return st.Revision, err
}

// ---- store-wide ----

// pathSlug returns the {slug} of the path, or not_found when it cannot
// be a tenant's.
func pathSlug(r *http.Request) (string, error) {
	slug := r.PathValue("slug")
	if !credentials.ValidSlug(slug) {
		return "", credentials.Errorf(credentials.ENotFound, "tenant not found")
	}
	return slug, nil
}

// pathID returns the {id} of the path, or not_found (naming what) when
// it cannot be an ID with prefix.
func pathID(r *http.Request, prefix, what string) (string, error) {
	id := r.PathValue("id")
	if credentials.ValidateID(prefix, id, "id") != nil {
		return "", credentials.Errorf(credentials.ENotFound, "%s not found", what)
	}
	return id, nil
}

// pathClient returns the {id} of the path when it names a stored client:
// not_found when it cannot be a client ID or no such client exists.
func (h *Handler) pathClient(r *http.Request) (string, error) {
	id, err := pathID(r, credentials.ClientPrefix, "client")
	if err != nil {
		return "", err
	}
	if _, err := h.store.Client(r.Context(), id); err != nil {
		return "", err
	}
	return id, nil
}

// bodyClient settles the client_id (*clientID) of a key created under
// the client {id} of the path: empty takes the path's, another is a field
// error, and the client must exist (not_found when it does not).
func (h *Handler) bodyClient(r *http.Request, clientID *string) error {
	id := r.PathValue("id")
	if err := fromPath(clientID, id, "client_id", "does not match the client ID in the path"); err != nil {
		return err
	}
	if err := credentials.ValidateID(credentials.ClientPrefix, id, "client_id"); err != nil {
		return credentials.Errorf(credentials.ENotFound, "client not found")
	}
	_, err := h.store.Client(r.Context(), id)
	return err
}

// fromPath sets *field to want when it is empty; when it is set and
// differs it answers the field error (name, msg).
func fromPath(field *string, want, name, msg string) error {
	if *field == "" {
		*field = want
	} else if *field != want {
		return credentials.FieldError(name, "%s", msg)
	}
	return nil
}

// answerWrite answers a write: v as JSON with status, with the new
// revision rev as the ETag and, when location is not "", a Location.
func (h *Handler) answerWrite(w http.ResponseWriter, status int, rev uint64, location string, v any) error {
	setETag(w, rev)
	if location != "" {
		w.Header().Set("Location", location)
	}
	h.writeJSON(w, status, v)
	return nil
}

// answerRead answers a read: what fetch returns for the current revision,
// as JSON, with that revision as the ETag.
func (h *Handler) answerRead(w http.ResponseWriter, r *http.Request, fetch func(ctx context.Context, rev uint64) (any, error)) error {
	rev, err := h.revision(r)
	if err != nil {
		return err
	}
	v, err := fetch(r.Context(), rev)
	if err != nil {
		return err
	}
	setETag(w, rev)
	h.writeJSON(w, http.StatusOK, v)
	return nil
}

// nonNil returns s, or an empty slice for nil, so lists encode as [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (h *Handler) getStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := h.store.Status(r.Context())
	if err != nil {
		return err
	}
	setETag(w, st.Revision)
	h.writeJSON(w, http.StatusOK, st)
	return nil
}

func (h *Handler) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	rev, err := h.revision(r)
	if err != nil {
		return err
	}
	snap, err := h.store.Export(r.Context())
	if err != nil {
		return err
	}
	for i := range snap.Clients {
		if ks := snap.Clients[i].APIKeys; ks != nil {
			for j := range *ks {
				(*ks)[j].Key = ""
			}
		}
		if ks := snap.Clients[i].HMACKeys; ks != nil {
			r := redactedHMACKeys(*ks)
			snap.Clients[i].HMACKeys = &r
		}
	}
	snap.Issuers = redactedIssuers(snap.Issuers)
	setETag(w, rev)
	h.writeJSON(w, http.StatusOK, snap)
	return nil
}

func (h *Handler) putSnapshot(w http.ResponseWriter, r *http.Request) error {
	var snap credentials.Snapshot
	if err := h.readJSON(w, r, &snap, false); err != nil {
		return err
	}
	ch, err := snap.Changes(true)
	if err != nil {
		return scrub(err, snapshotSecrets(&snap))
	}
	return h.applyResult(w, r, ch, snapshotSecrets(&snap))
}

func (h *Handler) postChanges(w http.ResponseWriter, r *http.Request) error {
	var b credentials.ChangeBatch
	if err := h.readJSON(w, r, &b, false); err != nil {
		return err
	}
	ch, err := b.Changes()
	if err != nil {
		return scrub(err, snapshotSecrets(&b.Upsert))
	}
	return h.applyResult(w, r, ch, snapshotSecrets(&b.Upsert))
}

// applyResult applies ch and answers the ApplyResult.
func (h *Handler) applyResult(w http.ResponseWriter, r *http.Request, ch *credentials.Changes, secrets []string) error {
	res, err := h.apply(r, ch)
	if err != nil {
		return scrub(err, secrets)
	}
	return h.answerWrite(w, http.StatusOK, res.Revision, "", res)
}

// snapshotSecrets returns the plaintext keys, HMAC secrets and oct key
// secrets in s.
func snapshotSecrets(s *credentials.Snapshot) []string {
	var out []string
	for i := range s.Clients {
		if ks := s.Clients[i].HMACKeys; ks != nil {
			out = append(out, hmacSecrets(*ks)...)
		}
		if ks := s.Clients[i].APIKeys; ks != nil {
			for _, k := range *ks {
				if k.Key != "" {
					out = append(out, k.Key)
				}
			}
		}
	}
	for i := range s.Issuers {
		out = append(out, issuerSecrets(&s.Issuers[i])...)
	}
	return out
}

func (h *Handler) getBackup(w http.ResponseWriter, r *http.Request) error {
	rev, err := h.revision(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="keygate.db"`)
	w.Header().Set("X-Keygate-Revision", strconv.FormatUint(rev, 10))
	n, err := h.store.Backup(r.Context(), w)
	if err != nil {
		if n == 0 {
			w.Header().Del("Content-Disposition")
			return err
		}
		// The status is sent; cut the answer short so the client sees a
		// truncated body rather than a valid-looking file.
		h.log.Error("admin backup failed", zap.Int64("written", n), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	h.log.Info("admin backup", zap.String("actor", actor(r)), zap.Int64("bytes", n), zap.Uint64("revision", rev))
	return nil
}

func (h *Handler) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPI)
	return nil
}

// ---- tenants ----

func (h *Handler) listTenants(w http.ResponseWriter, r *http.Request) error {
	return h.answerRead(w, r, func(ctx context.Context, rev uint64) (any, error) {
		ts, err := h.store.Tenants(ctx)
		return tenantList{Revision: rev, Tenants: nonNil(ts)}, err
	})
}

func (h *Handler) getTenant(w http.ResponseWriter, r *http.Request) error {
	slug, err := pathSlug(r)
	if err != nil {
		return err
	}
	return h.answerRead(w, r, func(ctx context.Context, _ uint64) (any, error) {
		return h.store.Tenant(ctx, slug)
	})
}

func (h *Handler) putTenant(w http.ResponseWriter, r *http.Request) error {
	var t credentials.Tenant
	if err := h.readJSON(w, r, &t, false); err != nil {
		return err
	}
	if err := fromPath(&t.Slug, r.PathValue("slug"), "slug", "does not match the slug in the path"); err != nil {
		return err
	}
	if err := t.Validate(""); err != nil {
		return err
	}
	res, err := h.apply(r, &credentials.Changes{Tenants: []credentials.Tenant{t}})
	if err != nil {
		return err
	}
	stored, err := h.store.Tenant(r.Context(), t.Slug)
	if err != nil {
		return err
	}
	return h.answerWrite(w, http.StatusOK, res.Revision, "", tenantResult{*stored, res.Revision})
}

func (h *Handler) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	slug, err := pathSlug(r)
	if err != nil {
		return err
	}
	return h.applyResult(w, r, &credentials.Changes{DeleteTenants: []string{slug}}, nil)
}

// ---- clients ----

func (h *Handler) listClients(w http.ResponseWriter, r *http.Request) error {
	tenant := r.URL.Query().Get("tenant")
	if tenant != "" && !credentials.ValidSlug(tenant) {
		return credentials.FieldError("tenant", "must be a tenant slug")
	}
	return h.answerRead(w, r, func(ctx context.Context, rev uint64) (any, error) {
		cs, err := h.store.Clients(ctx, tenant)
		return clientList{Revision: rev, Clients: nonNil(cs)}, err
	})
}

func (h *Handler) getClient(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, credentials.ClientPrefix, "client")
	if err != nil {
		return err
	}
	return h.answerRead(w, r, func(ctx context.Context, _ uint64) (any, error) {
		return h.store.Client(ctx, id)
	})
}

func (h *Handler) createClient(w http.ResponseWriter, r *http.Request) error {
	var c credentials.Client
	if err := h.readJSON(w, r, &c, false); err != nil {
		return err
	}
	if c.ID == "" {
		c.ID = newID(credentials.ClientPrefix)
	}
	return h.upsertClient(w, r, c, http.StatusCreated)
}

func (h *Handler) putClient(w http.ResponseWriter, r *http.Request) error {
	var c credentials.Client
	if err := h.readJSON(w, r, &c, false); err != nil {
		return err
	}
	if err := fromPath(&c.ID, r.PathValue("id"), "id", "does not match the ID in the path"); err != nil {
		return err
	}
	return h.upsertClient(w, r, c, http.StatusOK)
}

func (h *Handler) upsertClient(w http.ResponseWriter, r *http.Request, c credentials.Client, status int) error {
	if err := c.Validate(""); err != nil {
		return err
	}
	// A create (201) must not replace a client: the store checks that in
	// the transaction that writes it.
	res, err := h.apply(r, &credentials.Changes{Clients: []credentials.Client{c}, Create: status == http.StatusCreated})
	if err != nil {
		return err
	}
	stored, err := h.store.Client(r.Context(), c.ID)
	if err != nil {
		return err
	}
	location := ""
	if status == http.StatusCreated {
		location = "/v1/clients/" + c.ID
	}
	return h.answerWrite(w, status, res.Revision, location, clientResult{*stored, res.Revision})
}

func (h *Handler) deleteClient(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, credentials.ClientPrefix, "client")
	if err != nil {
		return err
	}
	return h.applyResult(w, r, &credentials.Changes{DeleteClients: []string{id}}, nil)
}

// ---- API keys ----

func (h *Handler) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	return h.writeKeys(w, r, "")
}

func (h *Handler) listClientAPIKeys(w http.ResponseWriter, r *http.Request) error {
	id, err := h.pathClient(r)
	if err != nil {
		return err
	}
	return h.writeKeys(w, r, id)
}

func (h *Handler) writeKeys(w http.ResponseWriter, r *http.Request, clientID string) error {
	return h.answerRead(w, r, func(ctx context.Context, rev uint64) (any, error) {
		ks, err := h.store.APIKeys(ctx, clientID)
		for i := range ks {
			ks[i].Key = ""
		}
		return apiKeyList{Revision: rev, APIKeys: nonNil(ks)}, err
	})
}

func (h *Handler) getAPIKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, credentials.APIKeyPrefix, "API key")
	if err != nil {
		return err
	}
	return h.answerRead(w, r, func(ctx context.Context, _ uint64) (any, error) {
		k, err := h.store.APIKey(ctx, id)
		if k != nil {
			k.Key = ""
		}
		return k, err
	})
}

func (h *Handler) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	var k credentials.APIKey
	if err := h.readJSON(w, r, &k, false); err != nil {
		return err
	}
	secrets := []string{k.Key}
	if err := h.bodyClient(r, &k.ClientID); err != nil {
		return err
	}
	if k.ID == "" {
		k.ID = newID(credentials.APIKeyPrefix)
	}
	var plaintext string
	if k.Key == "" && k.KeySHA256 == "" {
		plaintext = credentials.GenerateAPIKey()
		k.Key = plaintext
	}
	if err := k.Normalize(""); err != nil {
		return scrub(err, secrets)
	}
	res, err := h.apply(r, &credentials.Changes{APIKeys: []credentials.APIKey{k}, Create: true})
	if err != nil {
		return scrub(err, secrets)
	}
	stored, err := h.store.APIKey(r.Context(), k.ID)
	if err != nil {
		return err
	}
	stored.Key = ""
	return h.answerWrite(w, http.StatusCreated, res.Revision, "/v1/apikeys/"+k.ID, newAPIKeyResult{NewAPIKey{*stored, plaintext}, res.Revision})
}

func (h *Handler) putAPIKey(w http.ResponseWriter, r *http.Request) error {
	var k credentials.APIKey
	if err := h.readJSON(w, r, &k, false); err != nil {
		return err
	}
	secrets := []string{k.Key}
	if err := fromPath(&k.ID, r.PathValue("id"), "id", "does not match the ID in the path"); err != nil {
		return err
	}
	if err := credentials.ValidateID(credentials.APIKeyPrefix, k.ID, "id"); err != nil {
		return err
	}
	old, err := h.store.APIKey(r.Context(), k.ID)
	switch {
	case err == nil:
		if err := fromPath(&k.ClientID, old.ClientID, "client_id", "an API key cannot move to another client"); err != nil {
			return err
		}
		if k.Key == "" && k.KeySHA256 == "" {
			k.KeySHA256 = old.KeySHA256 // keep the key itself
		}
	case credentials.ErrorCode(err) == credentials.ENotFound:
		if k.ClientID == "" {
			return credentials.FieldError("client_id", "required for a new API key")
		}
	default:
		return err
	}
	if err := k.Normalize(""); err != nil {
		return scrub(err, secrets)
	}
	res, err := h.apply(r, &credentials.Changes{APIKeys: []credentials.APIKey{k}})
	if err != nil {
		return scrub(err, secrets)
	}
	stored, err := h.store.APIKey(r.Context(), k.ID)
	if err != nil {
		return err
	}
	stored.Key = ""
	return h.answerWrite(w, http.StatusOK, res.Revision, "", apiKeyResult{*stored, res.Revision})
}

func (h *Handler) deleteAPIKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, credentials.APIKeyPrefix, "API key")
	if err != nil {
		return err
	}
	return h.applyResult(w, r, &credentials.Changes{DeleteAPIKeys: []string{id}}, nil)
}

// rotateAPIKey makes a new generated key with a new ID and the old key's
// client, name, scopes and expiry, and limits the old key to the grace
// period (grace 0: disabled now) — both in one Apply.
func (h *Handler) rotateAPIKey(w http.ResponseWriter, r *http.Request) error {
	var req rotateRequest
	if err := h.readJSON(w, r, &req, true); err != nil {
		return err
	}
	var grace time.Duration
	if req.Grace != "" {
		d, err := time.ParseDuration(req.Grace)
		if err != nil || d < 0 {
			return credentials.FieldError("grace", "must be a non-negative Go duration such as \"1h\"")
		}
		grace = d
	}
	id, err := pathID(r, credentials.APIKeyPrefix, "API key")
	if err != nil {
		return err
	}
	old, err := h.store.APIKey(r.Context(), id)
	if err != nil {
		return err
	}
	old.Key = ""
	expires := old.ExpiresAt // the new key keeps the old key's own expiry
	if grace == 0 {
		old.Disabled = true
	} else if until := time.Now().Add(grace).UTC().Truncate(time.Second); old.ExpiresAt == nil || until.Before(*old.ExpiresAt) {
		old.ExpiresAt = &until
	}
	plaintext := credentials.GenerateAPIKey()
	nk := credentials.APIKey{
		ID:        newID(credentials.APIKeyPrefix),
		ClientID:  old.ClientID,
		Name:      old.Name,
		Key:       plaintext,
		Scopes:    old.Scopes,
		ExpiresAt: expires,
	}
	if err := old.Normalize(""); err != nil {
		return err
	}
	if err := nk.Normalize(""); err != nil {
		return scrub(err, []string{plaintext})
	}
	res, err := h.apply(r, &credentials.Changes{APIKeys: []credentials.APIKey{*old, nk}})
	if err != nil {
		return scrub(err, []string{plaintext})
	}
	stored, err := h.store.APIKey(r.Context(), nk.ID)
	if err != nil {
		return err
	}
	stored.Key = ""
	return h.answerWrite(w, http.StatusCreated, res.Revision, "/v1/apikeys/"+nk.ID, newAPIKeyResult{NewAPIKey{*stored, plaintext}, res.Revision})
}
