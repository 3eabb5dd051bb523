package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keygate/keygate/credentials"
)

// ---- tenants ----

func tenantRows(ts ...credentials.Tenant) [][]string {
	var rows [][]string
	for _, t := range ts {
		rows = append(rows, []string{t.Slug, dash(t.DisplayName), yesNo(t.Disabled), when(t.CreatedAt)})
	}
	return rows
}

const tenantHeader = "SLUG\tNAME\tDISABLED\tCREATED"

func (c *cli) showTenant(t *credentials.Tenant, rev uint64) error {
	c.revision(rev)
	return c.table(t, tenantHeader, tenantRows(*t))
}

var tenantCmds = map[string]subCommand{
	"create": {
		usage: "SLUG [--name NAME]",
		help:  "Create (or update) a tenant",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			name := fs.String("name", "", "display name")
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "SLUG"); err != nil {
					return err
				}
				t, rev, err := c.api.PutTenant(c.ctx, credentials.Tenant{Slug: args[0], DisplayName: *name})
				if err != nil {
					return err
				}
				return c.showTenant(t, rev)
			}
		},
	},
	"update": {
		usage: "SLUG --name NAME",
		help:  "Change a tenant's display name",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			name := fs.String("name", "", "display name")
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "SLUG"); err != nil {
					return err
				}
				return c.editTenant(args[0], func(t *credentials.Tenant) {
					if flagSet(fs, "name") {
						t.DisplayName = *name
					}
				})
			}
		},
	},
	"disable": toggleCmd("SLUG", "Disable a tenant (a disabled tenant's credentials are all refused)", true, setTenantDisabled),
	"enable":  toggleCmd("SLUG", "Enable a tenant", false, setTenantDisabled),
	"list": listCmd("List tenants", "", "", func(c *cli, _ string) ([]credentials.Tenant, error) {
		return c.api.ListTenants(c.ctx)
	}, tenantHeader, tenantRows),
	"get": getCmd("SLUG", "Show a tenant", func(c *cli, slug string) (*credentials.Tenant, error) {
		return c.api.GetTenant(c.ctx, slug)
	}, tenantHeader, tenantRows),
	"delete": deleteCmd("tenant", "SLUG", "Delete a tenant (it must have no clients left)", func(c *cli, slug string) (uint64, error) {
		return c.api.DeleteTenant(c.ctx, slug)
	}),
}

func setTenantDisabled(c *cli, slug string, disabled bool) error {
	return c.editTenant(slug, func(t *credentials.Tenant) { t.Disabled = disabled })
}

func (c *cli) editTenant(slug string, edit func(*credentials.Tenant)) error {
	t, err := c.api.GetTenant(c.ctx, slug)
	if err != nil {
		return err
	}
	edit(t)
	t, rev, err := c.api.PutTenant(c.ctx, *t)
	if err != nil {
		return err
	}
	return c.showTenant(t, rev)
}

func (c *cli) deleted(kind, id string, rev uint64) error {
	if c.json {
		return c.printJSON(map[string]any{"deleted": id, "revision": rev})
	}
	fmt.Fprintf(c.stdout, "deleted %s %s (revision %d)\n", kind, id, rev)
	return nil
}

// ---- clients ----

const clientHeader = "ID\tTENANT\tNAME\tSCOPES\tROLES\tRATE LIMIT\tCIDRS\tDISABLED"

func clientRows(cs ...credentials.Client) [][]string {
	var rows [][]string
	for _, cl := range cs {
		rows = append(rows, []string{cl.ID, cl.Tenant, dash(cl.Name), dash(strings.Join(cl.Scopes, " ")),
			dash(strings.Join(cl.Roles, " ")), dash(cl.RateLimit), dash(strings.Join(cl.AllowedCIDRs, " ")), yesNo(cl.Disabled)})
	}
	return rows
}

func (c *cli) showClient(cl *credentials.Client, rev uint64) error {
	c.revision(rev)
	return c.table(cl, clientHeader, clientRows(*cl))
}

// clientFlags declares the editable client fields; apply copies the ones
// given on the command line into a client.
func clientFlags(fs *flag.FlagSet) (apply func(*credentials.Client)) {
	name := fs.String("name", "", "name")
	desc := fs.String("description", "", "description")
	scopes := fs.String("scopes", "", "comma-separated scopes (wildcards like read:* allowed)")
	roles := fs.String("roles", "", "comma-separated roles")
	cidrs := fs.String("allowed-cidrs", "", "comma-separated CIDRs the client may call from (empty: any)")
	rate := fs.String("rate-limit", "", "N/second|minute|hour|day (empty: none)")
	return func(cl *credentials.Client) {
		if flagSet(fs, "name") {
			cl.Name = *name
		}
		if flagSet(fs, "description") {
			cl.Description = *desc
		}
		if flagSet(fs, "scopes") {
			cl.Scopes = splitList(*scopes)
		}
		if flagSet(fs, "roles") {
			cl.Roles = splitList(*roles)
		}
		if flagSet(fs, "allowed-cidrs") {
			cl.AllowedCIDRs = splitList(*cidrs)
		}
		if flagSet(fs, "rate-limit") {
			cl.RateLimit = *rate
		}
	}
}

var clientCmds = map[string]subCommand{
	"create": {
		usage: "--tenant SLUG [--id cl_…] [--name …] [--scopes …] [--roles …] [--allowed-cidrs …] [--rate-limit N/period]",
		help:  "Create a client; the ID is generated unless --id is given",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			tenant := fs.String("tenant", "", "tenant slug (required)")
			id := fs.String("id", "", "client ID (cl_…); generated when empty")
			apply := clientFlags(fs)
			return func(c *cli, args []string) error {
				if err := flagsOnly(args, "tenant", *tenant); err != nil {
					return err
				}
				cl := credentials.Client{ID: *id, Tenant: *tenant}
				apply(&cl)
				out, rev, err := c.api.CreateClient(c.ctx, cl)
				if err != nil {
					return err
				}
				return c.showClient(out, rev)
			}
		},
	},
	"update": {
		usage: "ID [--name …] [--scopes …] [--roles …] [--allowed-cidrs …] [--rate-limit …]",
		help:  "Change the given fields of a client",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			apply := clientFlags(fs)
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "ID"); err != nil {
					return err
				}
				return c.editClient(args[0], apply)
			}
		},
	},
	"disable": toggleCmd("ID", "Disable a client (a disabled client's keys are all refused)", true, setClientDisabled),
	"enable":  toggleCmd("ID", "Enable a client", false, setClientDisabled),
	"list": listCmd("List clients", "tenant", "only this tenant's clients", func(c *cli, tenant string) ([]credentials.Client, error) {
		return c.api.ListClients(c.ctx, tenant)
	}, clientHeader, clientRows),
	"get": getCmd("ID", "Show a client", func(c *cli, id string) (*credentials.Client, error) {
		return c.api.GetClient(c.ctx, id)
	}, clientHeader, clientRows),
	"delete": deleteCmd("client", "ID", "Delete a client and its API keys", func(c *cli, id string) (uint64, error) {
		return c.api.DeleteClient(c.ctx, id)
	}),
}

func setClientDisabled(c *cli, id string, disabled bool) error {
	return c.editClient(id, func(cl *credentials.Client) { cl.Disabled = disabled })
}

func (c *cli) editClient(id string, edit func(*credentials.Client)) error {
	cl, err := c.api.GetClient(c.ctx, id)
	if err != nil {
		return err
	}
	edit(cl)
	cl, rev, err := c.api.PutClient(c.ctx, *cl)
	if err != nil {
		return err
	}
	return c.showClient(cl, rev)
}

// ---- API keys ----

const keyHeader = "ID\tCLIENT\tNAME\tSCOPES\tEXPIRES\tDISABLED\tLAST USED\tLAST IP"

func keyRows(ks ...credentials.APIKey) [][]string {
	var rows [][]string
	for _, k := range ks {
		rows = append(rows, []string{k.ID, k.ClientID, dash(k.Name), dash(strings.Join(k.Scopes, " ")),
			whenPtr(k.ExpiresAt), yesNo(k.Disabled), whenPtr(k.LastUsedAt), dash(k.LastUsedIP)})
	}
	return rows
}

// keyFlags declares the editable key fields.
func keyFlags(fs *flag.FlagSet) (apply func(*credentials.APIKey) error) {
	name := fs.String("name", "", "name")
	scopes := fs.String("scopes", "", "comma-separated scopes, narrower than the client's (empty: the client's)")
	expiry := expiryFlags(fs, "expires")
	return func(k *credentials.APIKey) error {
		if flagSet(fs, "name") {
			k.Name = *name
		}
		if flagSet(fs, "scopes") {
			k.Scopes = splitList(*scopes)
		}
		return expiry(&k.ExpiresAt)
	}
}

var apikeyCmds = map[string]subCommand{
	"create": {
		usage: "--client ID [--name …] [--scopes …] [--expires-in 90d]",
		help:  "Generate a new API key; the key is printed once and cannot be shown again",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			client := fs.String("client", "", "client ID (required)")
			id := fs.String("id", "", "key ID (ak_…); generated when empty")
			quiet := fs.Bool("q", false, "print only the key (for scripts: KEY=$(keygate apikey create … -q))")
			apply := keyFlags(fs)
			return func(c *cli, args []string) error {
				if err := flagsOnly(args, "client", *client); err != nil {
					return err
				}
				k := credentials.APIKey{ID: *id, ClientID: *client}
				if err := apply(&k); err != nil {
					return err
				}
				nk, rev, err := c.api.CreateAPIKey(c.ctx, *client, k)
				if err != nil {
					return err
				}
				return c.showNewKey(nk.APIKey, nk.Key, rev, *quiet)
			}
		},
	},
	"import": {
		usage: "--client ID (--key-file FILE | --sha256 HEX) [--name …] [--scopes …]",
		help:  "Import an existing key: its plaintext from a file (- for stdin; hashed at once, never stored) or its SHA-256 hex digest",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			client := fs.String("client", "", "client ID (required)")
			id := fs.String("id", "", "key ID (ak_…); generated when empty")
			keyFile := fs.String("key-file", "", "file holding the plaintext key (- for stdin)")
			sum := fs.String("sha256", "", "SHA-256 hex digest of the key (e.g. from hashlib.sha256(key.encode()).hexdigest())")
			apply := keyFlags(fs)
			return func(c *cli, args []string) error {
				if err := flagsOnly(args, "client", *client); err != nil {
					return err
				}
				k := credentials.APIKey{ID: *id, ClientID: *client}
				switch {
				case (*keyFile == "") == (*sum == ""):
					return usageErr("give exactly one of --key-file or --sha256")
				case *keyFile != "":
					var data []byte
					var err error
					if *keyFile == "-" {
						data, err = io.ReadAll(io.LimitReader(c.stdin, credentials.MaxKeyLen+2))
					} else {
						data, err = os.ReadFile(*keyFile)
					}
					if err != nil {
						return err
					}
					key := string(bytes.TrimRight(data, "\r\n"))
					if err := credentials.CheckImportableKey(key); err != nil {
						return err
					}
					s := sha256.Sum256([]byte(key)) // the plaintext never leaves this process
					k.KeySHA256 = hex.EncodeToString(s[:])
				default:
					k.KeySHA256 = strings.ToLower(strings.TrimSpace(*sum))
				}
				if err := apply(&k); err != nil {
					return err
				}
				nk, rev, err := c.api.CreateAPIKey(c.ctx, *client, k)
				if err != nil {
					return err
				}
				c.revision(rev)
				return c.table(nk.APIKey, keyHeader, keyRows(nk.APIKey))
			}
		},
	},
	"rotate": {
		usage: "ID [--grace 1h]",
		help:  "Replace a key by a new one (new ID, same client, name, scopes); the old key keeps working for --grace, then expires",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			grace := fs.String("grace", "0s", "how long the old key stays valid (e.g. 1h, 7d); 0 disables it now")
			quiet := fs.Bool("q", false, "print only the new key")
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "ID"); err != nil {
					return err
				}
				g, err := parseDays(*grace)
				if err != nil {
					return usageErr("--grace: %v", err)
				}
				nk, rev, err := c.api.RotateAPIKey(c.ctx, args[0], g)
				if err != nil {
					return err
				}
				return c.showNewKey(nk.APIKey, nk.Key, rev, *quiet)
			}
		},
	},
	"update": {
		usage: "ID [--name …] [--scopes …] [--expires …]",
		help:  "Change the given fields of a key",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			apply := keyFlags(fs)
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "ID"); err != nil {
					return err
				}
				var applyErr error
				err := c.editKey(args[0], func(k *credentials.APIKey) { applyErr = apply(k) })
				if applyErr != nil {
					return applyErr
				}
				return err
			}
		},
	},
	"disable": toggleCmd("ID", "Disable an API key", true, setKeyDisabled),
	"enable":  toggleCmd("ID", "Enable an API key", false, setKeyDisabled),
	"list": listCmd("List API keys (never the keys themselves) with their last use", "client", "only this client's keys", func(c *cli, client string) ([]credentials.APIKey, error) {
		return c.api.ListAPIKeys(c.ctx, client)
	}, keyHeader, keyRows),
	"get": getCmd("ID", "Show an API key's record", func(c *cli, id string) (*credentials.APIKey, error) {
		return c.api.GetAPIKey(c.ctx, id)
	}, keyHeader, keyRows),
	"delete": deleteCmd("apikey", "ID", "Delete an API key", func(c *cli, id string) (uint64, error) {
		return c.api.DeleteAPIKey(c.ctx, id)
	}),
}

func setKeyDisabled(c *cli, id string, disabled bool) error {
	return c.editKey(id, func(k *credentials.APIKey) { k.Disabled = disabled })
}

func (c *cli) editKey(id string, edit func(*credentials.APIKey)) error {
	k, err := c.api.GetAPIKey(c.ctx, id)
	if err != nil {
		return err
	}
	edit(k)
	k.LastUsedAt, k.LastUsedIP = nil, ""
	k, rev, err := c.api.PutAPIKey(c.ctx, *k)
	if err != nil {
		return err
	}
	c.revision(rev)
	return c.table(k, keyHeader, keyRows(*k))
}

// showNewKey prints a generated key: the only time it is ever shown.
func (c *cli) showNewKey(k credentials.APIKey, key string, rev uint64, quiet bool) error {
	if quiet {
		_, err := fmt.Fprintln(c.stdout, key)
		return err
	}
	if c.json {
		return c.printJSON(struct {
			credentials.APIKey
			Key      string `json:"key"`
			Revision uint64 `json:"revision"`
		}{k, key, rev})
	}
	c.revision(rev)
	if err := c.table(k, keyHeader, keyRows(k)); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nkey: %s\n", key)
	fmt.Fprintln(c.stderr, "Store this key now: keygate keeps only its SHA-256 and cannot show it again.")
	return nil
}
