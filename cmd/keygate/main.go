// Command keygate is an Envoy external-authorization sidecar: `keygate
// serve` answers Envoy's ext_authz Check for API keys, HMAC-signed
// requests and JWTs from an embedded bbolt credential store, the admin
// commands manage that store through the admin API, `keygate sign` signs
// a request for testing clients, and `keygate rotate-master-key`
// re-encrypts the store's secrets offline.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// Main runs keygate with args (without the program name) and returns the
// exit code: 0 success, 1 failure, 2 usage error.
func Main(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainHelp)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, env, stderr)
	case "sign":
		return sign(rest, stdin, stdout, stderr)
	case "rotate-master-key":
		return rotateMasterKey(ctx, rest, env, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "--help", "-help", "-h":
		if len(rest) > 0 {
			return Main(ctx, []string{rest[0], "--help"}, env, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, mainHelp)
		return 0
	}
	if c, ok := adminCommands[cmd]; ok {
		return runAdminCommand(ctx, cmd, c, rest, env, stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "keygate: unknown command %q\n\n%s", cmd, mainHelp)
	return 2
}

func versionString() string {
	s := "keygate " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		s += " (" + bi.GoVersion
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				s += ", commit " + kv.Value[:12]
			}
		}
		s += ")"
	}
	return s
}

const mainHelp = `keygate — API-key / HMAC / JWT authorization for Envoy (ext_authz)

Envoy asks keygate (gRPC envoy.service.auth.v3.Authorization/Check) about every
request; keygate looks the credential up in its embedded store and answers allow
(with x-tenant-id, x-auth-* headers for the upstream) or deny (JSON error).

Usage:
  keygate serve [flags]            run the sidecar (gRPC :9191, HTTP :9192, admin 127.0.0.1:9193)
  keygate status                   store revision and credential counts
  keygate tenant  create|list|get|update|disable|enable|delete
  keygate client  create|list|get|update|disable|enable|delete
  keygate apikey  create|import|list|get|rotate|disable|enable|delete
  keygate hmac    create|import|list|get|rotate|update|disable|enable|delete
                                   HMAC keys: shared secrets for RFC 9421 or legacy signatures
  keygate issuer  put|list|get|delete    JWT issuers of a tenant (keys inline or from a JWKS URL)
  keygate revoke  jti|client|list        deny a JWT by jti, or every JWT of a client
  keygate apply -f state.yaml      replace the whole store with a snapshot document
  keygate backup -o FILE           download a consistent copy of the store
  keygate sign --key-id hk_… --secret-file FILE METHOD URL [BODY|@file]
                                   print the signature headers of a request (to test clients)
  keygate rotate-master-key --data-dir DIR --old-key-file F --new-key-file F
                                   re-encrypt the stored secrets under a new master key (offline)
  keygate version

Admin commands talk to the admin API of a running keygate:
  --admin-url URL          (env KEYGATE_ADMIN_URL, default http://127.0.0.1:9193)
  --admin-token-file FILE  (or env KEYGATE_ADMIN_TOKEN; default <data-dir>/admin.token,
                            which "keygate serve" generates on first start)
  -o table|json            output format (default table)

Run "keygate <command> --help" for a command's flags. Docs: README.md, docs/.
`

const serveHelp = `Usage: keygate serve [flags]

Runs the ext_authz sidecar. Every flag can also be set as KEYGATE_<FLAG> in the
environment (e.g. KEYGATE_GRPC_ADDR=:9191) or in a YAML file given by --config
(keys with underscores, e.g. grpc_addr). Flags win over the environment, which
wins over the file. An address of 127.0.0.1:0 picks a free port; every chosen
address is logged ("listening"). Details: docs/configuration.md.

Settings:
`
