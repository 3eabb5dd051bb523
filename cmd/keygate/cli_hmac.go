package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/keygate/keygate/credentials"
)

// ---- HMAC keys ----

const hmacHeader = "ID\tCLIENT\tNAME\tSCHEME\tSCOPES\tEXPIRES\tDISABLED"

func hmacRows(ks ...credentials.HMACKey) [][]string {
	var rows [][]string
	for _, k := range ks {
		rows = append(rows, []string{k.ID, k.ClientID, dash(k.Name), dash(k.Scheme), dash(strings.Join(k.Scopes, " ")),
			whenPtr(k.ExpiresAt), yesNo(k.Disabled)})
	}
	return rows
}

// hmacFlags declares the editable HMAC key fields; apply copies the ones
// given on the command line into a key.
func hmacFlags(fs *flag.FlagSet) (apply func(*credentials.HMACKey) error) {
	name := fs.String("name", "", "name")
	scheme := fs.String("scheme", "", "rfc9421 (RFC 9421 signatures, the key named by keyid; the default) or timestamp-body (legacy X-Signature, the key chosen by X-Tenant-ID; one per tenant)")
	scopes := fs.String("scopes", "", "comma-separated scopes, narrower than the client's (empty: the client's)")
	expiry := expiryFlags(fs, "expires-at")
	return func(k *credentials.HMACKey) error {
		if flagSet(fs, "name") {
			k.Name = *name
		}
		if flagSet(fs, "scheme") {
			switch *scheme {
			case credentials.SchemeRFC9421, credentials.SchemeTimestampBody:
				k.Scheme = *scheme
			default:
				return usageErr("--scheme must be %s or %s", credentials.SchemeRFC9421, credentials.SchemeTimestampBody)
			}
		}
		if flagSet(fs, "scopes") {
			k.Scopes = splitList(*scopes)
		}
		return expiry(&k.ExpiresAt)
	}
}

var hmacCmds = map[string]subCommand{
	"create": {
		usage: "--client ID [--id hk_…] [--name …] [--scheme rfc9421|timestamp-body] [--scopes a,b] [--expires-at RFC3339 | --expires-in 90d] [-q]",
		help:  "Generate an HMAC key (32 random bytes); its secret is printed once, as standard base64, and cannot be shown again",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			client := fs.String("client", "", "client ID (required)")
			id := fs.String("id", "", "key ID (hk_…); generated when empty")
			quiet := fs.Bool("q", false, "print only the secret (standard base64), for scripts: SECRET=$(keygate hmac create … -q)")
			apply := hmacFlags(fs)
			return func(c *cli, args []string) error {
				if err := flagsOnly(args, "client", *client); err != nil {
					return err
				}
				k := credentials.HMACKey{ID: *id, ClientID: *client}
				if err := apply(&k); err != nil {
					return err
				}
				nk, rev, err := c.api.CreateHMACKey(c.ctx, *client, k)
				if err != nil {
					return err
				}
				return c.showNewHMACKey(nk, rev, *quiet)
			}
		},
	},
	"import": {
		usage: "--client ID [--id hk_…] --secret-file FILE|- [--base64] [--name …] [--scheme …] [--scopes …] [--expires-at …]",
		help:  "Import an existing shared secret from a file (- for stdin; never from the command line): its raw bytes, or with --base64 their standard base64. At least 32 bytes",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			client := fs.String("client", "", "client ID (required)")
			id := fs.String("id", "", "key ID (hk_…); generated when empty")
			secretFile := fs.String("secret-file", "", "file holding the secret (- for stdin); raw bytes unless --base64")
			b64 := fs.Bool("base64", false, "the secret file holds the standard base64 of the secret (as `hmac create` printed it)")
			apply := hmacFlags(fs)
			return func(c *cli, args []string) error {
				if err := flagsOnly(args, "client", *client); err != nil {
					return err
				}
				if *secretFile == "" {
					return usageErr("--secret-file is required (the secret is never taken from the command line)")
				}
				secret, err := c.readSecretFile(*secretFile, *b64)
				if err != nil {
					return err
				}
				k := credentials.HMACKey{ID: *id, ClientID: *client, Secret: base64.StdEncoding.EncodeToString(secret)}
				if err := apply(&k); err != nil {
					return err
				}
				nk, rev, err := c.api.CreateHMACKey(c.ctx, *client, k)
				if err != nil {
					return err
				}
				c.revision(rev)
				return c.table(nk, hmacHeader, hmacRows(*nk))
			}
		},
	},
	"rotate": {
		usage: "ID [-q]",
		help:  "Give a key a new generated secret (same ID); the old secret stops working at once. The new secret is printed once",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			quiet := fs.Bool("q", false, "print only the new secret (standard base64)")
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "ID"); err != nil {
					return err
				}
				nk, rev, err := c.api.RotateHMACKey(c.ctx, args[0])
				if err != nil {
					return err
				}
				return c.showNewHMACKey(nk, rev, *quiet)
			}
		},
	},
	"update": {
		usage: "ID [--name …] [--scheme …] [--scopes …] [--expires-at …]",
		help:  "Change the given fields of a key (its secret stays)",
		flags: func(fs *flag.FlagSet) func(*cli, []string) error {
			apply := hmacFlags(fs)
			return func(c *cli, args []string) error {
				if err := nArgs(args, 1, "ID"); err != nil {
					return err
				}
				return c.editHMACKey(args[0], apply)
			}
		},
	},
	"disable": toggleCmd("ID", "Disable an HMAC key (its secret stays stored)", true, setHMACKeyDisabled),
	"enable":  toggleCmd("ID", "Enable an HMAC key", false, setHMACKeyDisabled),
	"list": listCmd("List HMAC keys (never their secrets)", "client", "only this client's keys", func(c *cli, client string) ([]credentials.HMACKey, error) {
		return c.api.ListHMACKeys(c.ctx, client)
	}, hmacHeader, hmacRows),
	"get": getCmd("ID", "Show an HMAC key's record (never its secret)", func(c *cli, id string) (*credentials.HMACKey, error) {
		return c.api.GetHMACKey(c.ctx, id)
	}, hmacHeader, hmacRows),
	"delete": deleteCmd("hmac key", "ID", "Delete an HMAC key", func(c *cli, id string) (uint64, error) {
		return c.api.DeleteHMACKey(c.ctx, id)
	}),
}

func setHMACKeyDisabled(c *cli, id string, disabled bool) error {
	return c.editHMACKey(id, func(k *credentials.HMACKey) error {
		k.Disabled = disabled
		return nil
	})
}

// editHMACKey is a read-modify-write of key id. The key read has no
// secret, so the PUT keeps the stored one.
func (c *cli) editHMACKey(id string, edit func(*credentials.HMACKey) error) error {
	k, err := c.api.GetHMACKey(c.ctx, id)
	if err != nil {
		return err
	}
	if err := edit(k); err != nil {
		return err
	}
	k.Secret = ""
	k, rev, err := c.api.PutHMACKey(c.ctx, *k)
	if err != nil {
		return err
	}
	c.revision(rev)
	return c.table(k, hmacHeader, hmacRows(*k))
}

// showNewHMACKey prints a generated secret: the only time it is shown.
func (c *cli) showNewHMACKey(k *credentials.HMACKey, rev uint64, quiet bool) error {
	if quiet {
		_, err := fmt.Fprintln(c.stdout, k.Secret)
		return err
	}
	if c.json {
		return c.printJSON(struct {
			credentials.HMACKey
			Revision uint64 `json:"revision"`
		}{*k, rev})
	}
	c.revision(rev)
	rec := k.Redacted()
	if err := c.table(rec, hmacHeader, hmacRows(rec)); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nsecret: %s\n", k.Secret)
	fmt.Fprintln(c.stderr, "Store this secret now: keygate keeps it encrypted and cannot show it again.")
	if k.Scheme == credentials.SchemeTimestampBody {
		fmt.Fprintf(c.stderr, "It is the standard base64 of the secret bytes. Clients sign with the decoded bytes: X-Signature = hex HMAC-SHA256 of \"<X-Timestamp>.<body>\", with X-Timestamp and X-Tenant-ID.\nTry: keygate sign --scheme timestamp-body --key-id %s --tenant TENANT --secret-file FILE --base64 POST https://api.example/v1/hook '{\"a\":1}'\n", k.ID)
	} else {
		fmt.Fprintf(c.stderr, "It is the standard base64 of the secret bytes. Clients sign requests with the decoded bytes (RFC 9421, alg=\"hmac-sha256\", keyid=\"%s\").\nTry: keygate sign --key-id %s --secret-file FILE --base64 GET https://api.example/v1/projects\n", k.ID, k.ID)
	}
	return nil
}

// readSecretFile reads an HMAC secret from path ("-": stdin): the raw
// bytes, or with b64 the standard base64 of them (surrounding white space
// ignored).
func (c *cli) readSecretFile(path string, b64 bool) ([]byte, error) {
	data, err := readSecret(c.stdin, path)
	if err != nil {
		return nil, err
	}
	if b64 {
		return decodeBase64Secret(data)
	}
	warnTrailingNewline(c.stderr, data)
	return data, nil
}

// readSecret reads the contents of path ("-": stdin), at most a little
// more than credentials.MaxHMACSecret in base64.
func readSecret(stdin io.Reader, path string) ([]byte, error) {
	const limit = 2 * credentials.MaxHMACSecret
	var r io.Reader
	if path == "-" {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("secret file %s: larger than %d bytes", path, limit)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	return data, nil
}

// decodeBase64Secret decodes standard base64 (padded or not), ignoring
// surrounding white space.
func decodeBase64Secret(data []byte) ([]byte, error) {
	s := string(bytes.TrimSpace(data))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("the secret file is not standard base64 (--base64)")
}

// warnTrailingNewline warns when a raw secret looks like text saved with
// a final newline: the newline is part of the secret, and clients that
// sign with the text alone would not match.
func warnTrailingNewline(w io.Writer, data []byte) {
	if !bytes.HasSuffix(data, []byte("\n")) || !utf8.Valid(data) {
		return
	}
	io.WriteString(w, "warning: the secret file ends with a newline, which is part of the raw secret; write the file without it (printf '%s' \"$SECRET\" > FILE) or use --base64 if the newline is not meant to be\n")
}
