package admin

import "net/http"

// route is one entry of the API: a Go 1.22 ServeMux method pattern and its
// handler. The mux and the openapi.yaml test are both built from routes.
type route struct {
	method string
	path   string // ServeMux path pattern; the same text as the OpenAPI path
	handle func(h *Handler, w http.ResponseWriter, r *http.Request) error
}

// pattern returns the ServeMux pattern of rt, e.g. "GET /v1/tenants/{slug}".
func (rt route) pattern() string { return rt.method + " " + rt.path }

// routes is the admin API. Keep openapi.yaml in step (a test enforces it).
var routes = []route{
	{"GET", "/v1/status", (*Handler).getStatus},
	{"GET", "/v1/snapshot", (*Handler).getSnapshot},
	{"PUT", "/v1/snapshot", (*Handler).putSnapshot},
	{"POST", "/v1/changes", (*Handler).postChanges},
	{"GET", "/v1/backup", (*Handler).getBackup},
	{"GET", "/v1/openapi.yaml", (*Handler).getOpenAPI},

	{"GET", "/v1/tenants", (*Handler).listTenants},
	{"GET", "/v1/tenants/{slug}", (*Handler).getTenant},
	{"PUT", "/v1/tenants/{slug}", (*Handler).putTenant},
	{"DELETE", "/v1/tenants/{slug}", (*Handler).deleteTenant},
	{"GET", "/v1/tenants/{slug}/issuers", (*Handler).listTenantIssuers},
	{"GET", "/v1/tenants/{slug}/issuers/{name}", (*Handler).getIssuer},
	{"PUT", "/v1/tenants/{slug}/issuers/{name}", (*Handler).putIssuer},
	{"DELETE", "/v1/tenants/{slug}/issuers/{name}", (*Handler).deleteIssuer},

	{"GET", "/v1/clients", (*Handler).listClients},
	{"POST", "/v1/clients", (*Handler).createClient},
	{"GET", "/v1/clients/{id}", (*Handler).getClient},
	{"PUT", "/v1/clients/{id}", (*Handler).putClient},
	{"DELETE", "/v1/clients/{id}", (*Handler).deleteClient},
	{"GET", "/v1/clients/{id}/apikeys", (*Handler).listClientAPIKeys},
	{"POST", "/v1/clients/{id}/apikeys", (*Handler).createAPIKey},
	{"GET", "/v1/clients/{id}/hmackeys", (*Handler).listClientHMACKeys},
	{"POST", "/v1/clients/{id}/hmackeys", (*Handler).createHMACKey},
	{"POST", "/v1/clients/{id}/revoke-tokens", (*Handler).revokeTokens},

	{"GET", "/v1/apikeys", (*Handler).listAPIKeys},
	{"GET", "/v1/apikeys/{id}", (*Handler).getAPIKey},
	{"PUT", "/v1/apikeys/{id}", (*Handler).putAPIKey},
	{"DELETE", "/v1/apikeys/{id}", (*Handler).deleteAPIKey},
	{"POST", "/v1/apikeys/{id}/rotate", (*Handler).rotateAPIKey},

	{"GET", "/v1/hmackeys", (*Handler).listHMACKeys},
	{"GET", "/v1/hmackeys/{id}", (*Handler).getHMACKey},
	{"PUT", "/v1/hmackeys/{id}", (*Handler).putHMACKey},
	{"DELETE", "/v1/hmackeys/{id}", (*Handler).deleteHMACKey},
	{"POST", "/v1/hmackeys/{id}/rotate", (*Handler).rotateHMACKey},

	{"GET", "/v1/issuers", (*Handler).listIssuers},

	{"GET", "/v1/revocations", (*Handler).listRevocations},
	{"POST", "/v1/revocations", (*Handler).postRevocations},
}

// routedMethods are the methods any route uses, for the Allow header of
// 405 answers.
var routedMethods = []string{"GET", "PUT", "POST", "DELETE"}
