package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/credentials"
)

// maxErrorBody bounds how much of an error answer the Client reads.
const maxErrorBody = 64 << 10

// Client calls the admin API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a client of the admin API at baseURL (for example
// "http://127.0.0.1:9193") authenticating with token. A nil hc means an
// http.Client with a 60 s timeout.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// APIError is a non-2xx answer of the admin API.
type APIError struct {
	Status  int    // HTTP status
	Code    string // error code, e.g. "invalid", "not_found"
	Message string // caller-safe message
	Field   string // the offending input field, if any
}

// Error returns e as "admin API: 400 invalid: message (field x)".
func (e *APIError) Error() string {
	s := fmt.Sprintf("admin API: %d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// request is one call of the API.
type request struct {
	method  string
	path    string // already escaped
	query   url.Values
	body    []byte // JSON, or nil
	ifMatch *uint64
	out     any // decoded from a 2xx JSON answer when non-nil
}

// do sends q and decodes the answer into q.out. Non-2xx answers are
// returned as *APIError.
func (c *Client) do(ctx context.Context, q request) error {
	resp, err := c.send(ctx, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if q.out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(q.out); err != nil {
		return fmt.Errorf("admin API: decoding the answer to %s %s: %w", q.method, q.path, err)
	}
	return nil
}

// send sends q and returns a 2xx answer; the caller closes its body.
func (c *Client) send(ctx context.Context, q request) (*http.Response, error) {
	u := c.base + q.path
	if len(q.query) > 0 {
		u += "?" + q.query.Encode()
	}
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if q.ifMatch != nil {
		req.Header.Set("If-Match", `"`+strconv.FormatUint(*q.ifMatch, 10)+`"`)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %s %s: %w", q.method, q.path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readAPIError(resp)
}

// readAPIError turns a non-2xx answer into an *APIError.
func readAPIError(resp *http.Response) error {
	e := &APIError{Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb errorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message, e.Field = eb.Error.Code, eb.Error.Message, eb.Error.Field
		return e
	}
	e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	e.Message = http.StatusText(resp.StatusCode)
	if s := strings.TrimSpace(string(data)); s != "" && len(s) < 200 {
		e.Message = s
	}
	return e
}

// call marshals in (when non-nil) as the body and decodes the answer into out.
func (c *Client) call(ctx context.Context, method, path string, in any, ifMatch *uint64, out any) error {
	q := request{method: method, path: path, ifMatch: ifMatch, out: out}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("admin API: encoding the request: %w", err)
		}
		q.body = b
	}
	return c.do(ctx, q)
}

func seg(s string) string { return url.PathEscape(s) }

// Status returns the store's revision and record counts.
func (c *Client) Status(ctx context.Context) (credentials.Status, error) {
	var st credentials.Status
	err := c.call(ctx, "GET", "/v1/status", nil, nil, &st)
	return st, err
}

// PutSnapshot replaces the whole state with snap in one transaction. With
// ifMatch non-nil the server refuses (412) unless its revision is *ifMatch.
func (c *Client) PutSnapshot(ctx context.Context, snap *credentials.Snapshot, ifMatch *uint64) (credentials.ApplyResult, error) {
	b, err := json.Marshal(snap)
	if err != nil {
		return credentials.ApplyResult{}, fmt.Errorf("admin API: encoding the snapshot: %w", err)
	}
	return c.PutSnapshotJSON(ctx, b, ifMatch)
}

// PutSnapshotJSON is PutSnapshot of a raw JSON snapshot document, which the
// server decodes strictly and validates.
func (c *Client) PutSnapshotJSON(ctx context.Context, body []byte, ifMatch *uint64) (credentials.ApplyResult, error) {
	var res credentials.ApplyResult
	err := c.do(ctx, request{method: "PUT", path: "/v1/snapshot", body: body, ifMatch: ifMatch, out: &res})
	return res, err
}

// GetSnapshot returns the whole state as a snapshot document (keys as
// digests).
func (c *Client) GetSnapshot(ctx context.Context) (*credentials.Snapshot, error) {
	var s credentials.Snapshot
	if err := c.call(ctx, "GET", "/v1/snapshot", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Changes applies a batch of upserts and deletes in one transaction.
func (c *Client) Changes(ctx context.Context, b *credentials.ChangeBatch, ifMatch *uint64) (credentials.ApplyResult, error) {
	var res credentials.ApplyResult
	err := c.call(ctx, "POST", "/v1/changes", b, ifMatch, &res)
	return res, err
}

// Backup writes a consistent copy of the store's bbolt file to w and
// returns the number of bytes written.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, request{method: "GET", path: "/v1/backup"})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("admin API: reading the backup: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("admin API: backup truncated at %d of %d bytes", n, resp.ContentLength)
	}
	return n, nil
}

// ---- tenants ----

// PutTenant creates or replaces tenant t and returns it as stored with the
// new revision.
func (c *Client) PutTenant(ctx context.Context, t credentials.Tenant) (*credentials.Tenant, uint64, error) {
	var out tenantResult
	if err := c.call(ctx, "PUT", "/v1/tenants/"+seg(t.Slug), t, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.Tenant, out.Revision, nil
}

// GetTenant returns tenant slug.
func (c *Client) GetTenant(ctx context.Context, slug string) (*credentials.Tenant, error) {
	var t credentials.Tenant
	if err := c.call(ctx, "GET", "/v1/tenants/"+seg(slug), nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTenants returns all tenants ordered by slug.
func (c *Client) ListTenants(ctx context.Context) ([]credentials.Tenant, error) {
	var out tenantList
	err := c.call(ctx, "GET", "/v1/tenants", nil, nil, &out)
	return out.Tenants, err
}

// DeleteTenant deletes tenant slug (409 while it has clients) and returns
// the new revision.
func (c *Client) DeleteTenant(ctx context.Context, slug string) (uint64, error) {
	var res credentials.ApplyResult
	err := c.call(ctx, "DELETE", "/v1/tenants/"+seg(slug), nil, nil, &res)
	return res.Revision, err
}

// ---- clients ----

// CreateClient creates client cl (POST /v1/clients) with a generated ID
// when cl.ID is empty, and returns it as stored with the new revision.
func (c *Client) CreateClient(ctx context.Context, cl credentials.Client) (*credentials.Client, uint64, error) {
	var out clientResult
	if err := c.call(ctx, "POST", "/v1/clients", cl, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.Client, out.Revision, nil
}

// PutClient creates or replaces client cl (its API keys stay) and returns
// it as stored with the new revision.
func (c *Client) PutClient(ctx context.Context, cl credentials.Client) (*credentials.Client, uint64, error) {
	var out clientResult
	if err := c.call(ctx, "PUT", "/v1/clients/"+seg(cl.ID), cl, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.Client, out.Revision, nil
}

// GetClient returns client id.
func (c *Client) GetClient(ctx context.Context, id string) (*credentials.Client, error) {
	var cl credentials.Client
	if err := c.call(ctx, "GET", "/v1/clients/"+seg(id), nil, nil, &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// ListClients returns the clients of tenant ("" for all), ordered by ID.
func (c *Client) ListClients(ctx context.Context, tenant string) ([]credentials.Client, error) {
	q := request{method: "GET", path: "/v1/clients"}
	if tenant != "" {
		q.query = url.Values{"tenant": {tenant}}
	}
	var out clientList
	q.out = &out
	err := c.do(ctx, q)
	return out.Clients, err
}

// DeleteClient deletes client id and its keys and returns the new revision.
func (c *Client) DeleteClient(ctx context.Context, id string) (uint64, error) {
	var res credentials.ApplyResult
	err := c.call(ctx, "DELETE", "/v1/clients/"+seg(id), nil, nil, &res)
	return res.Revision, err
}

// ---- API keys ----

// CreateAPIKey creates an API key of client clientID. With k.Key or
// k.KeySHA256 set it imports that key (and no key is returned); otherwise
// the server generates one and returns its plaintext, once, as Key. An
// empty k.ID means a generated ID.
func (c *Client) CreateAPIKey(ctx context.Context, clientID string, k credentials.APIKey) (*NewAPIKey, uint64, error) {
	var out newAPIKeyResult
	if err := c.call(ctx, "POST", "/v1/clients/"+seg(clientID)+"/apikeys", k, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.NewAPIKey, out.Revision, nil
}

// GetAPIKey returns API key id (its digest, never the key).
func (c *Client) GetAPIKey(ctx context.Context, id string) (*credentials.APIKey, error) {
	var k credentials.APIKey
	if err := c.call(ctx, "GET", "/v1/apikeys/"+seg(id), nil, nil, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// ListAPIKeys returns the keys of client clientID, or all keys when
// clientID is "".
func (c *Client) ListAPIKeys(ctx context.Context, clientID string) ([]credentials.APIKey, error) {
	path := "/v1/apikeys"
	if clientID != "" {
		path = "/v1/clients/" + seg(clientID) + "/apikeys"
	}
	var out apiKeyList
	err := c.call(ctx, "GET", path, nil, nil, &out)
	return out.APIKeys, err
}

// PutAPIKey creates or replaces API key k. Without Key and KeySHA256 an
// existing key keeps its digest (e.g. to disable it or change its scopes).
func (c *Client) PutAPIKey(ctx context.Context, k credentials.APIKey) (*credentials.APIKey, uint64, error) {
	var out apiKeyResult
	if err := c.call(ctx, "PUT", "/v1/apikeys/"+seg(k.ID), k, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.APIKey, out.Revision, nil
}

// DeleteAPIKey deletes API key id and returns the new revision.
func (c *Client) DeleteAPIKey(ctx context.Context, id string) (uint64, error) {
	var res credentials.ApplyResult
	err := c.call(ctx, "DELETE", "/v1/apikeys/"+seg(id), nil, nil, &res)
	return res.Revision, err
}

// RotateAPIKey creates a new generated key (new ID; same client, name,
// scopes and expiry as key id) and returns it with its plaintext. The old
// key expires at now+grace, or is disabled at once when grace is 0.
func (c *Client) RotateAPIKey(ctx context.Context, id string, grace time.Duration) (*NewAPIKey, uint64, error) {
	var out newAPIKeyResult
	in := rotateRequest{Grace: grace.String()}
	if err := c.call(ctx, "POST", "/v1/apikeys/"+seg(id)+"/rotate", in, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.NewAPIKey, out.Revision, nil
}

// ---- HMAC keys ----

// CreateHMACKey creates an HMAC key of client clientID. Without k.Secret
// the server generates a secret (credentials.GeneratedHMACSecret bytes)
// and returns it, once, as Secret (standard base64); with k.Secret set the
// key is imported and its secret is not returned. An empty k.ID means a
// generated ID; an empty k.Scheme means rfc9421.
func (c *Client) CreateHMACKey(ctx context.Context, clientID string, k credentials.HMACKey) (*credentials.HMACKey, uint64, error) {
	var out hmacKeyResult
	if err := c.call(ctx, "POST", "/v1/clients/"+seg(clientID)+"/hmackeys", k, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.HMACKey, out.Revision, nil
}

// GetHMACKey returns HMAC key id, without its secret.
func (c *Client) GetHMACKey(ctx context.Context, id string) (*credentials.HMACKey, error) {
	var k credentials.HMACKey
	if err := c.call(ctx, "GET", "/v1/hmackeys/"+seg(id), nil, nil, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// ListHMACKeys returns the HMAC keys of client clientID, or all HMAC keys
// when clientID is "", ordered by ID and without secrets.
func (c *Client) ListHMACKeys(ctx context.Context, clientID string) ([]credentials.HMACKey, error) {
	path := "/v1/hmackeys"
	if clientID != "" {
		path = "/v1/clients/" + seg(clientID) + "/hmackeys"
	}
	var out hmacKeyList
	err := c.call(ctx, "GET", path, nil, nil, &out)
	return out.HMACKeys, err
}

// PutHMACKey creates or replaces HMAC key k and returns it as stored,
// without its secret, with the new revision. A new key needs ClientID and
// Secret; an existing key keeps its stored secret when k.Secret is empty
// (e.g. to disable it or change its scopes).
func (c *Client) PutHMACKey(ctx context.Context, k credentials.HMACKey) (*credentials.HMACKey, uint64, error) {
	var out hmacKeyResult
	if err := c.call(ctx, "PUT", "/v1/hmackeys/"+seg(k.ID), k, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.HMACKey, out.Revision, nil
}

// DeleteHMACKey deletes HMAC key id and returns the new revision.
func (c *Client) DeleteHMACKey(ctx context.Context, id string) (uint64, error) {
	var res credentials.ApplyResult
	err := c.call(ctx, "DELETE", "/v1/hmackeys/"+seg(id), nil, nil, &res)
	return res.Revision, err
}

// RotateHMACKey gives HMAC key id a new generated secret (same ID, so
// clients keep their keyid; the old secret stops working at once) and
// returns the key with the new secret, once, as Secret.
func (c *Client) RotateHMACKey(ctx context.Context, id string) (*credentials.HMACKey, uint64, error) {
	var out hmacKeyResult
	if err := c.call(ctx, "POST", "/v1/hmackeys/"+seg(id)+"/rotate", nil, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.HMACKey, out.Revision, nil
}

// ---- JWT issuers ----

// PutIssuer creates or replaces issuer is (named by is.Tenant and is.Name)
// and returns it as stored, without the secrets of its oct keys, with the
// new revision. An oct key without K but with a Kid keeps the stored
// secret of that key.
func (c *Client) PutIssuer(ctx context.Context, is credentials.Issuer) (*credentials.Issuer, uint64, error) {
	var out issuerResult
	if err := c.call(ctx, "PUT", issuerPath(is.Tenant, is.Name), is, nil, &out); err != nil {
		return nil, 0, err
	}
	return &out.Issuer, out.Revision, nil
}

// GetIssuer returns issuer name of tenant, without the secrets of its oct
// keys.
func (c *Client) GetIssuer(ctx context.Context, tenant, name string) (*credentials.Issuer, error) {
	var is credentials.Issuer
	if err := c.call(ctx, "GET", issuerPath(tenant, name), nil, nil, &is); err != nil {
		return nil, err
	}
	return &is, nil
}

// ListIssuers returns the issuers of tenant, or of all tenants when tenant
// is "", ordered by tenant and name, without the secrets of oct keys.
func (c *Client) ListIssuers(ctx context.Context, tenant string) ([]credentials.Issuer, error) {
	path := "/v1/issuers"
	if tenant != "" {
		path = "/v1/tenants/" + seg(tenant) + "/issuers"
	}
	var out issuerList
	err := c.call(ctx, "GET", path, nil, nil, &out)
	return out.Issuers, err
}

// DeleteIssuer deletes issuer name of tenant and returns the new revision.
func (c *Client) DeleteIssuer(ctx context.Context, tenant, name string) (uint64, error) {
	var res credentials.ApplyResult
	err := c.call(ctx, "DELETE", issuerPath(tenant, name), nil, nil, &res)
	return res.Revision, err
}

func issuerPath(tenant, name string) string {
	return "/v1/tenants/" + seg(tenant) + "/issuers/" + seg(name)
}

// ---- revocations ----

// Revoke adds the JWT IDs of rs to the denylist, each until its ExpiresAt,
// in one transaction. Revoking a jti again keeps the later expiry.
func (c *Client) Revoke(ctx context.Context, rs ...credentials.Revocation) (credentials.ApplyResult, error) {
	var res credentials.ApplyResult
	if len(rs) == 0 {
		return res, errors.New("admin API: Revoke needs at least one revocation")
	}
	err := c.call(ctx, "POST", "/v1/revocations", revokeRequest{Revocations: rs}, nil, &res)
	return res, err
}

// ListRevocations returns the revocations that have not expired, ordered
// by jti.
func (c *Client) ListRevocations(ctx context.Context) ([]credentials.Revocation, error) {
	var out revocationList
	err := c.call(ctx, "GET", "/v1/revocations", nil, nil, &out)
	return out.Revocations, err
}

// RevokeTokens increments the token_version of client clientID, which
// revokes every JWT minted for it so far, and returns the new
// token_version and revision.
func (c *Client) RevokeTokens(ctx context.Context, clientID string) (tokenVersion int64, rev uint64, err error) {
	var out revokeTokensResult
	if err := c.call(ctx, "POST", "/v1/clients/"+seg(clientID)+"/revoke-tokens", nil, nil, &out); err != nil {
		return 0, 0, err
	}
	return out.TokenVersion, out.Revision, nil
}
