package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate/keygate/credentials"
)

// The answers of the issuer and revocation routes.
type (
	issuerResult struct {
		credentials.Issuer
		Revision uint64 `json:"revision"`
	}
	issuerList struct {
		Revision uint64               `json:"revision"`
		Issuers  []credentials.Issuer `json:"issuers"`
	}
	revocationList struct {
		Revision    uint64                   `json:"revision"`
		Revocations []credentials.Revocation `json:"revocations"`
	}
	// revokeTokensResult answers POST /v1/clients/{id}/revoke-tokens.
	revokeTokensResult struct {
		Revision     uint64 `json:"revision"`
		ClientID     string `json:"client_id"`
		TokenVersion int64  `json:"token_version"`
	}
)

// revokeRequest is the body of POST /v1/revocations: one revocation
// ({"jti": …, "expires_at": …}) or several ({"revocations": [...]}), not
// both.
type revokeRequest struct {
	JTI         string                   `json:"jti,omitempty"`
	ExpiresAt   *time.Time               `json:"expires_at,omitempty"`
	Revocations []credentials.Revocation `json:"revocations,omitempty"`
}

// revocations validates q and returns its revocations, with field names
// that follow the body ("jti", "revocations[2].expires_at").
func (q *revokeRequest) revocations() ([]credentials.Revocation, error) {
	if q.Revocations == nil {
		rv := credentials.Revocation{JTI: q.JTI}
		if q.ExpiresAt != nil {
			rv.ExpiresAt = *q.ExpiresAt
		}
		if err := rv.Validate(""); err != nil {
			return nil, err
		}
		return []credentials.Revocation{rv}, nil
	}
	if q.JTI != "" || q.ExpiresAt != nil {
		return nil, credentials.FieldError("revocations", "give either jti and expires_at, or a revocations list, not both")
	}
	if len(q.Revocations) == 0 {
		return nil, credentials.FieldError("revocations", "at least one revocation is required")
	}
	seen := make(map[string]bool, len(q.Revocations))
	out := make([]credentials.Revocation, 0, len(q.Revocations))
	for i, rv := range q.Revocations {
		f := fmt.Sprintf("revocations[%d]", i)
		rv.CreatedAt = time.Time{} // server-managed
		if err := rv.Validate(f); err != nil {
			return nil, err
		}
		if seen[rv.JTI] {
			return nil, credentials.FieldError(f+".jti", "duplicate jti")
		}
		seen[rv.JTI] = true
		out = append(out, rv)
	}
	return out, nil
}

// issuerSecrets returns the oct key secrets (k) in is, to scrub from
// error messages.
func issuerSecrets(is *credentials.Issuer) []string {
	if is.JWKS == nil {
		return nil
	}
	var out []string
	for _, k := range is.JWKS.Keys {
		if k.K != "" {
			out = append(out, k.K)
		}
	}
	return out
}

// redactedIssuers returns is with the secrets of oct keys removed. The
// store already returns issuers without them; this keeps the promise
// even if a store does not.
func redactedIssuers(is []credentials.Issuer) []credentials.Issuer {
	out := make([]credentials.Issuer, len(is))
	for i := range is {
		out[i] = is[i].Redacted()
	}
	return out
}

// pathIssuer returns the {slug} and {name} of the path, or not_found when
// they cannot name an issuer.
func pathIssuer(r *http.Request) (tenant, name string, err error) {
	tenant, name = r.PathValue("slug"), r.PathValue("name")
	if !credentials.ValidSlug(tenant) || !credentials.ValidIssuerName(name) {
		return "", "", credentials.Errorf(credentials.ENotFound, "issuer not found")
	}
	return tenant, name, nil
}

// ---- issuers ----

func (h *Handler) listIssuers(w http.ResponseWriter, r *http.Request) error {
	return h.writeIssuers(w, r, "")
}

func (h *Handler) listTenantIssuers(w http.ResponseWriter, r *http.Request) error {
	slug, err := pathSlug(r)
	if err != nil {
		return err
	}
	if _, err := h.store.Tenant(r.Context(), slug); err != nil {
		return err
	}
	return h.writeIssuers(w, r, slug)
}

func (h *Handler) writeIssuers(w http.ResponseWriter, r *http.Request, tenant string) error {
	return h.answerRead(w, r, func(ctx context.Context, rev uint64) (any, error) {
		is, err := h.store.Issuers(ctx, tenant)
		return issuerList{Revision: rev, Issuers: redactedIssuers(is)}, err
	})
}

func (h *Handler) getIssuer(w http.ResponseWriter, r *http.Request) error {
	tenant, name, err := pathIssuer(r)
	if err != nil {
		return err
	}
	return h.answerRead(w, r, func(ctx context.Context, _ uint64) (any, error) {
		is, err := h.store.Issuer(ctx, tenant, name)
		if err != nil {
			return nil, err
		}
		return is.Redacted(), nil
	})
}

// putIssuer creates or replaces an issuer. The path names it; tenant and
// name in the body may be omitted and must match the path when given. An
// oct key without k but with a kid keeps the stored secret of that key.
func (h *Handler) putIssuer(w http.ResponseWriter, r *http.Request) error {
	var is credentials.Issuer
	if err := h.readJSON(w, r, &is, false); err != nil {
		return err
	}
	secrets := issuerSecrets(&is)
	if err := fromPath(&is.Tenant, r.PathValue("slug"), "tenant", "does not match the tenant in the path"); err != nil {
		return err
	}
	if err := fromPath(&is.Name, r.PathValue("name"), "name", "does not match the issuer name in the path"); err != nil {
		return err
	}
	if err := is.Normalize("", true); err != nil {
		return scrub(err, secrets)
	}
	res, err := h.apply(r, &credentials.Changes{Issuers: []credentials.Issuer{is}})
	if err != nil {
		return scrub(err, secrets)
	}
	stored, err := h.store.Issuer(r.Context(), is.Tenant, is.Name)
	if err != nil {
		return err
	}
	return h.answerWrite(w, http.StatusOK, res.Revision, "", issuerResult{stored.Redacted(), res.Revision})
}

func (h *Handler) deleteIssuer(w http.ResponseWriter, r *http.Request) error {
	tenant, name, err := pathIssuer(r)
	if err != nil {
		return err
	}
	return h.applyResult(w, r, &credentials.Changes{DeleteIssuers: []string{tenant + "/" + name}}, nil)
}

// ---- revocations ----

func (h *Handler) listRevocations(w http.ResponseWriter, r *http.Request) error {
	return h.answerRead(w, r, func(ctx context.Context, rev uint64) (any, error) {
		rs, err := h.store.Revocations(ctx)
		return revocationList{Revision: rev, Revocations: nonNil(rs)}, err
	})
}

// postRevocations adds JWT IDs to the denylist until their expiry.
func (h *Handler) postRevocations(w http.ResponseWriter, r *http.Request) error {
	var q revokeRequest
	if err := h.readJSON(w, r, &q, false); err != nil {
		return err
	}
	rs, err := q.revocations()
	if err != nil {
		return err
	}
	return h.applyResult(w, r, &credentials.Changes{Revocations: rs}, nil)
}

// revokeTokens increments a client's token_version: every JWT minted for
// it before (its ver claim) is refused from the next Check on.
func (h *Handler) revokeTokens(w http.ResponseWriter, r *http.Request) error {
	var empty struct{}
	if err := h.readJSON(w, r, &empty, true); err != nil {
		return err
	}
	id, err := pathID(r, credentials.ClientPrefix, "client")
	if err != nil {
		return err
	}
	res, err := h.apply(r, &credentials.Changes{RevokeTokensOf: []string{id}})
	if err != nil {
		return err
	}
	cl, err := h.store.Client(r.Context(), id)
	if err != nil {
		return err
	}
	return h.answerWrite(w, http.StatusOK, res.Revision, "", revokeTokensResult{Revision: res.Revision, ClientID: id, TokenVersion: cl.TokenVersion})
}
