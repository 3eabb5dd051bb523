package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/admin"
	"sigs.k8s.io/yaml"
)

// cli is what every admin command gets: the API client and the output.
type cli struct {
	ctx    context.Context
	api    *admin.Client
	json   bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// adminCommand is a top-level admin command with its subcommands.
type adminCommand struct {
	summary string
	subs    map[string]subCommand // nil: the command itself is the leaf ("")
}

type subCommand struct {
	usage string // arguments, e.g. "SLUG [--name NAME]"
	help  string
	flags func(fs *flag.FlagSet) func(c *cli, args []string) error
}

var adminCommands map[string]adminCommand

func init() {
	adminCommands = map[string]adminCommand{
		"status": {summary: "show the store revision and credential counts", subs: map[string]subCommand{"": statusCmd}},
		"apply":  {summary: "replace the whole store with a snapshot document (YAML or JSON)", subs: map[string]subCommand{"": applyCmd}},
		"backup": {summary: "download a consistent copy of the store", subs: map[string]subCommand{"": backupCmd}},
		"tenant": {summary: "manage tenants", subs: tenantCmds},
		"client": {summary: "manage clients (the principals credentials belong to)", subs: clientCmds},
		"apikey": {summary: "manage API keys", subs: apikeyCmds},
		"hmac":   {summary: "manage HMAC keys (shared secrets clients sign requests with)", subs: hmacCmds},
		"issuer": {summary: "manage JWT issuers (the identity providers a tenant trusts)", subs: issuerCmds},
		"revoke": {summary: "revoke JWTs: one by its jti until it expires, or all of a client's", subs: revokeCmds},
	}
}

// errUsage marks an error the user can fix by changing the command line.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func usageErr(format string, args ...any) error { return errUsage{fmt.Sprintf(format, args...)} }

func runAdminCommand(ctx context.Context, name string, cmd adminCommand, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	sub, subName := cmd.subs[""], ""
	if _, leaf := cmd.subs[""]; !leaf {
		if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
			printSubHelp(stdout, name, cmd)
			if len(args) == 0 {
				return 2
			}
			return 0
		}
		var ok bool
		if sub, ok = cmd.subs[args[0]]; !ok {
			fmt.Fprintf(stderr, "keygate %s: unknown subcommand %q\n\n", name, args[0])
			printSubHelp(stderr, name, cmd)
			return 2
		}
		subName, args = args[0], args[1:]
	}
	full := strings.TrimSpace("keygate " + name + " " + subName)
	fs := flag.NewFlagSet(full, flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin-url", envOr(env, "KEYGATE_ADMIN_URL", "http://127.0.0.1:9193"), "admin API base URL (env KEYGATE_ADMIN_URL)")
	tokenFile := fs.String("admin-token-file", env("KEYGATE_ADMIN_TOKEN_FILE"), "file holding the admin token (env KEYGATE_ADMIN_TOKEN holds the token itself; default <data-dir>/admin.token)")
	dataDir := fs.String("data-dir", envOr(env, "KEYGATE_DATA_DIR", "./data"), "where to find the dev-default admin.token")
	run := sub.flags(fs)
	output := new(string)
	if fs.Lookup("o") == nil { // backup uses -o for its file, as SPEC §5 spells it
		output = fs.String("o", "table", "output format: table or json")
	} else {
		*output = "table"
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s\n\n%s\n\nFlags:\n", full, sub.usage, sub.help)
		fs.PrintDefaults()
	}
	fs.SetOutput(stdout)
	pos, err := parseInterleaved(fs, args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", full, err)
		return 2
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "%s: -o must be table or json\n", full)
		return 2
	}
	token := env("KEYGATE_ADMIN_TOKEN")
	if token == "" {
		path := *tokenFile
		if path == "" {
			path = filepath.Join(*dataDir, "admin.token")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "%s: no admin token: set KEYGATE_ADMIN_TOKEN or --admin-token-file (%v)\n", full, err)
			return 2
		}
		token = strings.TrimSpace(string(b))
	}
	c := &cli{ctx: ctx, api: admin.NewClient(*adminURL, token, nil), json: *output == "json", stdin: stdin, stdout: stdout, stderr: stderr}
	if err := run(c, pos); err != nil {
		var ue errUsage
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "%s: %v\nRun \"%s --help\" for usage.\n", full, err, full)
			return 2
		}
		fmt.Fprintf(stderr, "%s: %v\n", full, err)
		return 1
	}
	return 0
}

func printSubHelp(w io.Writer, name string, cmd adminCommand) {
	fmt.Fprintf(w, "Usage: keygate %s <subcommand> [flags]\n\n%s.\n\nSubcommands:\n", name, strings.ToUpper(cmd.summary[:1])+cmd.summary[1:])
	for _, s := range sortedKeys(cmd.subs) {
		fmt.Fprintf(w, "  %s %s\n      %s\n", s, cmd.subs[s].usage, cmd.subs[s].help)
	}
	fmt.Fprintf(w, "\nRun \"keygate %s <subcommand> --help\" for its flags.\n", name)
}

// parseInterleaved parses flags that may stand after positional arguments
// ("tenant create acme --name Acme").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func envOr(env func(string) string, name, def string) string {
	if v := env(name); v != "" {
		return v
	}
	return def
}

func nArgs(args []string, n int, what string) error {
	if len(args) != n {
		return usageErr("want %s, got %d argument(s)", what, len(args))
	}
	return nil
}

// splitList splits "a, b,c" into [a b c]; "" gives nil.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// parseDays parses a Go duration that may also use "d" for days ("30d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q is not a duration like 30d or 12h", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30d or 12h", s)
	}
	return d, nil
}

// flagsOnly checks a command that takes no arguments, only flags, and
// needs --name (whose value is value).
func flagsOnly(args []string, name, value string) error {
	if err := nArgs(args, 0, "no arguments (use flags)"); err != nil {
		return err
	}
	if value == "" {
		return usageErr("--%s is required", name)
	}
	return nil
}

// expiryFlags declares --atName (an RFC 3339 time) and --expires-in (a
// duration from now, e.g. 90d); set stores the expiry given, if any,
// in *dst and leaves it alone when neither flag is given.
func expiryFlags(fs *flag.FlagSet, atName string) (set func(dst **time.Time) error) {
	at := fs.String(atName, "", "expiry time (RFC 3339, e.g. 2026-12-31T00:00:00Z)")
	in := fs.String("expires-in", "", "expiry from now (e.g. 90d, 12h)")
	return func(dst **time.Time) error {
		switch {
		case *at != "" && *in != "":
			return usageErr("give --%s or --expires-in, not both", atName)
		case *at != "":
			t, err := time.Parse(time.RFC3339, *at)
			if err != nil {
				return usageErr("--%s: %q is not an RFC 3339 time", atName, *at)
			}
			*dst = &t
		case *in != "":
			d, err := parseDays(*in)
			if err != nil {
				return usageErr("--expires-in: %v", err)
			}
			t := time.Now().Add(d).UTC().Truncate(time.Second)
			*dst = &t
		}
		return nil
	}
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, or v as JSON with -o json.
func (c *cli) table(v any, header string, rows [][]string) error {
	if c.json {
		return c.printJSON(v)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return when(*t)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) revision(rev uint64) {
	if !c.json {
		fmt.Fprintf(c.stderr, "revision %d\n", rev)
	}
}

// ---- status and apply ----

var statusCmd = subCommand{
	usage: "",
	help:  "Show the store revision and counts of records and active credentials",
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		return func(c *cli, args []string) error {
			if err := nArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			st, err := c.api.Status(c.ctx)
			if err != nil {
				return err
			}
			rows := [][]string{
				{"revision", strconv.FormatUint(st.Revision, 10), ""},
				{"tenants", strconv.Itoa(st.Counts.Tenants), strconv.Itoa(st.Active.Tenants)},
				{"clients", strconv.Itoa(st.Counts.Clients), strconv.Itoa(st.Active.Clients)},
				{"apikeys", strconv.Itoa(st.Counts.APIKeys), strconv.Itoa(st.Active.APIKeys)},
				{"hmackeys", strconv.Itoa(st.Counts.HMACKeys), strconv.Itoa(st.Active.HMACKeys)},
				{"issuers", strconv.Itoa(st.Counts.Issuers), strconv.Itoa(st.Active.Issuers)},
			}
			return c.table(st, "WHAT\tTOTAL\tACTIVE", rows)
		}
	},
}

var applyCmd = subCommand{
	usage: "-f FILE",
	help:  "Replace the whole store with the snapshot in FILE (YAML or JSON; - for stdin). What the file omits is deleted. Identical input keeps the revision.",
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		file := fs.String("f", "", "snapshot document (YAML or JSON), - for stdin")
		ifMatch := fs.String("if-match", "", "only apply if the store is at this revision")
		return func(c *cli, args []string) error {
			if err := nArgs(args, 0, "no arguments besides -f FILE"); err != nil {
				return err
			}
			if *file == "" {
				return usageErr("-f FILE is required")
			}
			js, err := c.readDocument(*file)
			if err != nil {
				return err
			}
			var im *uint64
			if *ifMatch != "" {
				n, err := strconv.ParseUint(*ifMatch, 10, 64)
				if err != nil {
					return usageErr("--if-match must be a revision number")
				}
				im = &n
			}
			res, err := c.api.PutSnapshotJSON(c.ctx, js, im)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			if res.Changed {
				fmt.Fprintf(c.stdout, "applied: revision %d\n", res.Revision)
			} else {
				fmt.Fprintf(c.stdout, "no change: revision %d\n", res.Revision)
			}
			return nil
		}
	},
}

// readDocument reads a YAML or JSON document from path ("-": stdin) and
// returns it as JSON.
func (c *cli) readDocument(path string) ([]byte, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(c.stdin, 1<<30))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return js, nil
}

// yamlToJSON converts a YAML (or JSON) document to JSON.
//
// YAML 1.1, which sigs.k8s.io/yaml follows, reads the unquoted keys n and
// y as booleans, so the n of an RSA JWK and the y of an EC JWK arrive as
// "false" and "true". In a JWK (an object with kty) those two names mean
// nothing else, so they are renamed back.
func yamlToJSON(data []byte) ([]byte, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(js, []byte(`"kty"`)) || !bytes.Contains(js, []byte(`"true":`)) && !bytes.Contains(js, []byte(`"false":`)) {
		return js, nil
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if !fixJWKMembers(doc) {
		return js, nil
	}
	return json.Marshal(doc)
}

// fixJWKMembers renames "false" to "n" and "true" to "y" in every JWK
// object in v and reports whether it renamed any.
func fixJWKMembers(v any) bool {
	changed := false
	switch v := v.(type) {
	case map[string]any:
		if _, jwk := v["kty"]; jwk {
			for from, to := range map[string]string{"false": "n", "true": "y"} {
				if x, ok := v[from]; ok {
					if _, taken := v[to]; !taken {
						v[to] = x
						delete(v, from)
						changed = true
					}
				}
			}
		}
		for _, x := range v {
			changed = fixJWKMembers(x) || changed
		}
	case []any:
		for _, x := range v {
			changed = fixJWKMembers(x) || changed
		}
	}
	return changed
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var backupCmd = subCommand{
	usage: "-o FILE",
	help:  "Download a consistent copy of the store (a bbolt file that `keygate serve --data-dir` can open)",
	flags: func(fs *flag.FlagSet) func(*cli, []string) error {
		out := fs.String("o", "", "file to write (required)")
		return func(c *cli, args []string) error {
			if err := nArgs(args, 0, "no arguments besides -o FILE"); err != nil {
				return err
			}
			if *out == "" {
				return usageErr("-o FILE is required")
			}
			tmp := *out + ".partial"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			n, err := c.api.Backup(c.ctx, f)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(tmp)
				return err
			}
			if err := os.Rename(tmp, *out); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "wrote %s (%d bytes)\n", *out, n)
			return nil
		}
	},
}

// parseCommand parses the flags of a standalone command (sign,
// rotate-master-key) named name: --help prints help and the flags to
// stdout (helped). usage reports a usage error on stderr and returns exit
// code 2; the parse error, if any, is for the caller to report with it.
func parseCommand(fs *flag.FlagSet, name, help string, args []string, stdout, stderr io.Writer) (pos []string, usage func(format string, a ...any) int, helped bool, err error) {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		fs.PrintDefaults()
	}
	fs.SetOutput(stdout)
	pos, err = parseInterleaved(fs, args)
	fs.SetOutput(stderr)
	usage = func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\nRun \"%s --help\" for usage.\n", name, fmt.Sprintf(format, a...), name)
		return 2
	}
	return pos, usage, errors.Is(err, flag.ErrHelp), err
}
