package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/credentials"
)

// ---- JWT issuers ----

const issuerHeader = "TENANT\tNAME\tISSUER\tALGORITHMS\tKEYS\tAUDIENCES\tDISABLED"

func issuerRows(is ...credentials.Issuer) [][]string {
	var rows [][]string
	for _, i := range is {
		keys := i.JWKSURI
		if i.JWKS != nil {
			keys = "inline " + strconv.Itoa(len(i.JWKS.Keys))
		}
		rows = append(rows, []string{i.Tenant, i.Name, dash(i.Issuer), strings.Join(i.Algorithms, ","), dash(keys),
			dash(strings.Join(i.Audiences, " ")), yesNo(i.Disabled)})
	}
	return rows
}

// parseIssuerArg splits the TENANT/NAME argument.
func parseIssuerArg(arg string) (tenant, name string, err error) {
	tenant, name, err = credentials.ParseIssuerID(arg, "TENANT/NAME")
	if err != nil {
		return "", "", usageErr("%q is not TENANT/NAME (e.g. acme-corp/corp-idp)", arg)
	}
	return tenant, name, nil
}

// listFlag is a repeatable flag whose values may also be comma lists
// ("--audience a --audience b" = "--audience a,b").
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

// claimsFlag is the repeatable --required-claim name=value.
type claimsFlag map[string]any

func (m claimsFlag) String() string { return "" }

func (m claimsFlag) Set(v string) error {
	name, val, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not name=value", v)
	}
	if _, dup := m[name]; dup {
		return fmt.Errorf("claim %q given twice", name)
	}
	m[name] = claimValue(val)
	return nil
}

// claimValue types a --required-claim value: true and false are booleans,
// a JSON number is a number, a JSON string ("007", with the quotes) is
// that string, anything else is the text as given.
func claimValue(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if len(v) >= 2 && v[0] == '"' {
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			return s
		}
	}
	var n json.Number
	if v != "" && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') && json.Unmarshal([]byte(v), &n) == nil {
		if f, err := n.Float64(); err == nil {
			return f
		}
	}
	return v
}

// issuerFieldFlags maps the issuer's JSON fields to the flags of
// `issuer put`, to point at the flag an API error is about.
var issuerFieldFlags = map[string]string{
	"issuer": "--issuer", "audiences": "--audience", "algorithms": "--algorithms", "jwks": "--jwks-file",
	"jwks_uri": "--jwks-uri", "jwks_refresh": "--jwks-refresh", "leeway": "--leeway", "tenant_claim": "--tenant-claim",
	"subject_claim": "--subject-claim", "roles_claim": "--roles-claim", "required_claims": "--required-claim",
}

// issuerFlagNames are the flags of `issuer put` that set issuer fields.
var issuerFlagNames = map[string]bool{"issuer": true, "audience": true, "algorithms": true, "jwks-uri": true,
	"jwks-file": true, "jwks-refresh": true, "leeway": true, "tenant-claim": true, "subject-claim": true,
	"roles-claim": true, "required-claim": true, "disabled": true}

// withFlagHint adds the flag that set the field an API error names.
func withFlagHint(err error) error {
	var ae *admin.APIError
	if !errors.As(err, &ae) || ae.Field == "" {
		return err
	}
	head, _, _ := strings.Cut(ae.Field, ".")
	head, _, _ = strings.Cut(head, "[")
	if f, ok := issuerFieldFlags[head]; ok {
		return fmt.Errorf("%w (set by %s)", err, f)
	}
	return err
}

var issuerPut = subCommand{
	usage: "TENANT/NAME (-f FILE | --algorithms RS256,… (--jwks-uri URL | --jwks-file FILE) [--issuer URL] [--audience AUD]… [flags])",
	help: "Create or replace a tenant's JWT issuer, the whole record: from a YAML or JSON document (-f; - for stdin) " +
		"or from flags. HS* keys are oct JWKs whose secret (k) is never shown again; an oct key without k but with its kid keeps the stored secret.",
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		file := fs.String("f", "", "issuer document (YAML or JSON; - for stdin); TENANT/NAME may then be omitted if the document names them")
		iss := fs.String("issuer", "", "the iss value tokens carry (empty: tokens without iss; inline keys only)")
		var auds, algs listFlag
		fs.Var(&auds, "audience", "an accepted aud value (repeatable, or a comma list; none: aud is not checked)")
		fs.Var(&algs, "algorithms", "allowed algorithms, e.g. RS256,ES256 or HS256 (repeatable)")
		jwksURI := fs.String("jwks-uri", "", "URL of the issuer's JWKS (fetched and cached; not for HS*)")
		jwksFile := fs.String("jwks-file", "", "file holding an inline JWKS ({\"keys\": [...]}) or one JWK, JSON or YAML (- for stdin)")
		refresh := fs.String("jwks-refresh", "", "how often --jwks-uri is fetched (Go duration, 1m-24h; default 15m)")
		leeway := fs.String("leeway", "", "clock skew allowed for exp, nbf and iat (Go duration, at most 60s)")
		tenantClaim := fs.String("tenant-claim", "", "claim that must equal the tenant's slug")
		subjectClaim := fs.String("subject-claim", "", "claim used as x-auth-subject (default sub)")
		rolesClaim := fs.String("roles-claim", "", "claim holding the roles (a.b finds {\"a\": {\"b\": …}})")
		claims := claimsFlag{}
		fs.Var(claims, "required-claim", "name=value a token must carry exactly (repeatable; true/false are booleans, numbers numbers, \"…\" forces a string)")
		disabled := fs.Bool("disabled", false, "store the issuer disabled (its tokens are refused)")
		return func(c *cli, args []string) error {
			if len(args) > 1 || len(args) == 0 && *file == "" {
				return usageErr("want TENANT/NAME, got %d argument(s)", len(args))
			}
			var tenant, name string
			if len(args) == 1 {
				var err error
				if tenant, name, err = parseIssuerArg(args[0]); err != nil {
					return err
				}
			}
			fieldFlags := false
			fs.Visit(func(f *flag.Flag) { fieldFlags = fieldFlags || issuerFlagNames[f.Name] })
			var is credentials.Issuer
			switch {
			case *file != "" && fieldFlags:
				return usageErr("give -f FILE or the issuer's flags, not both")
			case *file != "":
				js, err := c.readDocument(*file)
				if err != nil {
					return err
				}
				if err := credentials.DecodeStrict(js, &is); err != nil {
					return fmt.Errorf("%s: %w", *file, err)
				}
				if tenant == "" && (is.Tenant == "" || is.Name == "") {
					return usageErr("%s does not name the issuer: give TENANT/NAME", *file)
				}
				if tenant != "" {
					if is.Tenant != "" && is.Tenant != tenant || is.Name != "" && is.Name != name {
						return usageErr("%s names issuer %s/%s, not %s", *file, is.Tenant, is.Name, args[0])
					}
					is.Tenant, is.Name = tenant, name
				}
			case !fieldFlags:
				return usageErr("give -f FILE, or at least --algorithms and --jwks-uri or --jwks-file")
			default:
				is = credentials.Issuer{Tenant: tenant, Name: name, Issuer: *iss, Audiences: auds, Algorithms: algs,
					JWKSURI: *jwksURI, TenantClaim: *tenantClaim, SubjectClaim: *subjectClaim, RolesClaim: *rolesClaim, Disabled: *disabled}
				if len(claims) > 0 {
					is.RequiredClaims = claims
				}
				for _, d := range []struct {
					flag, v string
					dst     *credentials.Duration
				}{{"jwks-refresh", *refresh, &is.JWKSRefresh}, {"leeway", *leeway, &is.Leeway}} {
					if d.v == "" {
						continue
					}
					v, err := time.ParseDuration(d.v)
					if err != nil {
						return usageErr("--%s: %q is not a duration like 30s or 15m", d.flag, d.v)
					}
					*d.dst = credentials.Duration(v)
				}
				if *jwksFile != "" {
					jwks, err := c.readJWKS(*jwksFile)
					if err != nil {
						return err
					}
					is.JWKS = jwks
				}
			}
			out, rev, err := c.api.PutIssuer(c.ctx, is)
			if err != nil {
				if *file == "" {
					return withFlagHint(err)
				}
				return err
			}
			c.revision(rev)
			if len(out.Audiences) == 0 && !c.json {
				fmt.Fprintln(c.stderr, "note: no audiences given: tokens are accepted whatever their aud")
			}
			return c.table(out, issuerHeader, issuerRows(*out))
		}
	},
}

// readJWKS reads a JWKS document, or a single JWK, as JSON or YAML.
func (c *cli) readJWKS(path string) (*credentials.JWKS, error) {
	js, err := c.readDocument(path)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(js, &probe); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS or JWK object: %w", path, err)
	}
	var jwks credentials.JWKS
	if _, one := probe["kty"]; one {
		var k credentials.JWK
		if err := json.Unmarshal(js, &k); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		jwks.Keys = []credentials.JWK{k}
	} else if err := credentials.DecodeStrict(js, &jwks); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS ({\"keys\": [...]}) or a JWK: %w", path, err)
	}
	if jwks.Keys == nil {
		return nil, fmt.Errorf("%s: not a JWKS: no \"keys\" array", path)
	}
	return &jwks, nil
}

var issuerCmds = map[string]subCommand{
	"put": issuerPut,
	"list": listCmd("List JWT issuers (oct key secrets are never shown)", "tenant", "only this tenant's issuers", func(c *cli, tenant string) ([]credentials.Issuer, error) {
		return c.api.ListIssuers(c.ctx, tenant)
	}, issuerHeader, issuerRows),
	"get": getCmd("TENANT/NAME", "Show a JWT issuer (-o json for every field)", func(c *cli, id string) (*credentials.Issuer, error) {
		tenant, name, err := parseIssuerArg(id)
		if err != nil {
			return nil, err
		}
		return c.api.GetIssuer(c.ctx, tenant, name)
	}, issuerHeader, issuerRows),
	"delete": deleteCmd("issuer", "TENANT/NAME", "Delete a JWT issuer (its tokens are refused from the next Check on)", func(c *cli, id string) (uint64, error) {
		tenant, name, err := parseIssuerArg(id)
		if err != nil {
			return 0, err
		}
		return c.api.DeleteIssuer(c.ctx, tenant, name)
	}),
}

// ---- revocations ----

const revocationHeader = "JTI\tEXPIRES\tREVOKED"

func revocationRows(rs ...credentials.Revocation) [][]string {
	var rows [][]string
	for _, r := range rs {
		rows = append(rows, []string{r.JTI, when(r.ExpiresAt), when(r.CreatedAt)})
	}
	return rows
}

var revokeCmds = map[string]subCommand{
	"jti": {
		usage: "JTI… (--expires-at RFC3339 | --expires-in 1h)",
		help:  "Refuse the JWTs with these jti values until the given expiry (use the token's exp; revoking again keeps the later expiry)",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			at := fs.String("expires-at", "", "when the revocation ends: the token's exp (RFC 3339, e.g. 2026-12-01T00:00:00Z)")
			in := fs.String("expires-in", "", "when the revocation ends, from now (e.g. 1h, 30d)")
			return func(c *cli, args []string) error {
				if len(args) == 0 {
					return usageErr("want at least one JTI")
				}
				var exp time.Time
				switch {
				case (*at == "") == (*in == ""):
					return usageErr("give exactly one of --expires-at or --expires-in")
				case *at != "":
					t, err := time.Parse(time.RFC3339, *at)
					if err != nil {
						return usageErr("--expires-at: %q is not an RFC 3339 time", *at)
					}
					exp = t
				default:
					d, err := parseDays(*in)
					if err != nil || d <= 0 {
						return usageErr("--expires-in: %q is not a positive duration like 1h or 30d", *in)
					}
					exp = time.Now().Add(d).UTC().Truncate(time.Second)
				}
				rs := make([]credentials.Revocation, len(args))
				for i, jti := range args {
					rs[i] = credentials.Revocation{JTI: jti, ExpiresAt: exp}
				}
				res, err := c.api.Revoke(c.ctx, rs...)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(struct {
						credentials.ApplyResult
						Revocations []credentials.Revocation `json:"revocations"`
					}{res, rs})
				}
				c.revision(res.Revision)
				return c.table(nil, "JTI\tEXPIRES", revokedRows(rs))
			}
		},
	},
	"client": {
		usage: "ID",
		help:  "Revoke every JWT minted for a client so far: increments its token_version (tokens carry it as ver) and prints the new one",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "ID"); err != nil {
					return err
				}
				v, rev, err := c.api.RevokeTokens(c.ctx, args[0])
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(map[string]any{"revision": rev, "client_id": args[0], "token_version": v})
				}
				c.revision(rev)
				return c.table(nil, "CLIENT\tTOKEN VERSION", [][]string{{args[0], strconv.FormatInt(v, 10)}})
			}
		},
	},
	"list": listCmd("List the revoked JWT IDs that have not expired", "", "", func(c *cli, _ string) ([]credentials.Revocation, error) {
		return c.api.ListRevocations(c.ctx)
	}, revocationHeader, revocationRows),
}

func revokedRows(rs []credentials.Revocation) [][]string {
	rows := make([][]string, len(rs))
	for i, r := range rs {
		rows[i] = []string{r.JTI, when(r.ExpiresAt)}
	}
	return rows
}
