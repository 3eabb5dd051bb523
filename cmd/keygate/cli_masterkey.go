package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/keygate/keygate/bolt"
)

const rotateMasterKeyHelp = `Usage: keygate rotate-master-key --data-dir DIR --old-key-file FILE --new-key-file FILE

Re-encrypts every secret keygate keeps encrypted at rest (HMAC key secrets,
the secrets of HS* issuer keys) from the old master key to the new one, in one
transaction: the store holds either the old key's secrets or the new key's,
never a mix. Offline: stop keygate first (the store file is locked while it
runs). Key files hold 32 bytes, raw or base64, like --master-key-file.

Afterwards start keygate with --master-key-file set to the new key file; the
old key no longer opens the store. Backups made before the rotation still need
the old key.

Flags:
`

// rotateMasterKey runs `keygate rotate-master-key`.
func rotateMasterKey(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	const name = "keygate rotate-master-key"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	dataDir := fs.String("data-dir", envOr(env, "KEYGATE_DATA_DIR", "./data"), "directory of keygate.db (env KEYGATE_DATA_DIR)")
	oldFile := fs.String("old-key-file", "", "the current master key (32 bytes, raw or base64)")
	newFile := fs.String("new-key-file", "", "the new master key (32 bytes, raw or base64)")
	lockTimeout := fs.Duration("lock-timeout", time.Second, "how long to wait for the store file's lock (a running keygate holds it)")
	output := fs.String("o", "table", "output format: table or json")
	pos, usage, helped, err := parseCommand(fs, name, rotateMasterKeyHelp, args, stdout, stderr)
	if helped {
		return 0
	}
	switch {
	case err != nil:
		return usage("%v", err)
	case len(pos) != 0:
		return usage("want no arguments, got %q", pos)
	case *oldFile == "" || *newFile == "":
		return usage("--old-key-file and --new-key-file are required")
	case *output != "table" && *output != "json":
		return usage("-o must be table or json")
	}
	oldKey, _, _, err := masterKey(&Config{MasterKeyFile: *oldFile})
	if err != nil {
		fmt.Fprintf(stderr, "%s: --old-key-file: %v\n", name, err)
		return 1
	}
	newKey, _, _, err := masterKey(&Config{MasterKeyFile: *newFile})
	if err != nil {
		fmt.Fprintf(stderr, "%s: --new-key-file: %v\n", name, err)
		return 1
	}
	if bytes.Equal(oldKey, newKey) {
		return usage("the old and the new key are the same")
	}
	path := filepath.Join(*dataDir, "keygate.db")
	n, err := bolt.RotateMasterKey(path, oldKey, newKey, bolt.Options{LockTimeout: *lockTimeout})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if *output == "json" {
		c := &cli{ctx: ctx, stdout: stdout, stderr: stderr}
		if err := c.printJSON(map[string]any{"store": path, "reencrypted": n, "new_key_file": *newFile}); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "re-encrypted %d secret(s) of %s under the new master key\n", n, path)
	fmt.Fprintf(stdout, "start keygate with --master-key-file %s (the old key no longer opens this store)\n", *newFile)
	if def := filepath.Join(*dataDir, "master.key"); filepath.Clean(*oldFile) == filepath.Clean(def) {
		fmt.Fprintf(stderr, "note: %s is keygate's default master key file and still holds the old key: replace it with the new key, or always pass --master-key-file\n", def)
	}
	return 0
}
