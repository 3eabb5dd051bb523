package bolt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/keygate/keygate/credentials"
)

// RotateMasterKey re-encrypts every sealed secret of the store at path
// (the secrets of issuers' oct keys and of HMAC keys) from oldKey to
// newKey and replaces the master key check, offline: keygate must not be
// running on the file. It returns the number of secrets re-encrypted.
//
// Everything happens in one bbolt write transaction, fsynced on commit,
// so the file holds either the old key's secrets and check or the new
// key's, never a mix, whatever happens mid-way; a failed rotation changes
// nothing. The revision, the records and the audit log are unchanged (the
// secrets themselves are the same).
//
// It fails without writing when the file does not exist or is not a
// keygate store, when another process holds it (a running keygate: the
// error says so after o.LockTimeout, 1s when 0), when oldKey does not
// match the store's master key check (wrapping ErrWrongMasterKey), or
// when a sealed secret does not decrypt with oldKey (an error naming its
// record). Both keys must be MasterKeySize bytes. A store that holds
// neither sealed secrets nor a master key check is left as it is and 0
// is returned: its first secret will write the check of whatever key
// keygate then runs with. A store with a check but no secret left gets
// the check of newKey (and 0). Only o.LockTimeout and o.Logger are used.
func RotateMasterKey(path string, oldKey, newKey []byte, o Options) (n int, err error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = defaultLockTimeout
	}
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("keygate: rotate the master key of store %s: %w", path, err)
	}
	if len(oldKey) == 0 || len(newKey) == 0 {
		return fail(errors.New("both the old and the new master key are required"))
	}
	from, err := newSealer(oldKey)
	if err != nil {
		return fail(fmt.Errorf("old key: %w", err))
	}
	to, err := newSealer(newKey)
	if err != nil {
		return fail(fmt.Errorf("new key: %w", err))
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return fail(err)
	case !fi.Mode().IsRegular():
		return fail(errors.New("not a regular file"))
	case fi.Size() == 0:
		return fail(errors.New("the file is empty: not a keygate store"))
	}
	db, err := openBolt(path, o.LockTimeout)
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return fail(fmt.Errorf("the store is locked by another process (waited %s): stop keygate before rotating its master key", o.LockTimeout))
		case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
			return fail(err)
		}
		return 0, corrupted(path, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			n, err = 0, fmt.Errorf("keygate: rotate the master key of store %s: close: %w", path, cerr)
		}
	}()
	err = func() (err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("bbolt panicked: %v", r)
			}
		}()
		return db.Update(func(tx *bbolt.Tx) error {
			var err error
			n, err = rotateTx(tx, from, to)
			return err
		})
	}()
	if errors.Is(err, errNoChange) {
		o.Logger.Info("master key not rotated: the store holds no secret and no master key check", zap.String("store", path))
		return 0, nil
	}
	if err != nil {
		if errors.Is(err, ErrWrongMasterKey) {
			return fail(ErrWrongMasterKey)
		}
		return fail(err)
	}
	o.Logger.Info("master key rotated", zap.String("store", path), zap.Int("secrets", n))
	return n, nil
}

// errNoChange rolls back a rotation that has nothing to write.
var errNoChange = errors.New("nothing to rotate")

// rotateTx re-seals the secrets of tx from one sealer to the other and
// writes the new check. It returns the number of secrets re-sealed, or
// an error that rolls tx back.
func rotateTx(tx *bbolt.Tx, from, to *sealer) (int, error) {
	m := tx.Bucket(bucketMeta)
	if m == nil || string(m.Get(metaFormat)) != formatMarker {
		return 0, errors.New("not a keygate store (no format marker)")
	}
	if v := m.Get(metaVersion); string(v) != formatVersion {
		return 0, fmt.Errorf("format version %q is not supported (this keygate reads version %s)", v, formatVersion)
	}
	check := m.Get(metaKeyCheck)
	if check != nil && !from.checks(check) {
		return 0, ErrWrongMasterKey
	}
	n := 0
	if err := rewriteBucket(tx.Bucket(bucketIssuers), func(k, v []byte) ([]byte, error) {
		// The issuer is kept as stored (raw); only the sealed map
		// changes.
		var r struct {
			Issuer json.RawMessage   `json:"issuer"`
			Sealed map[string][]byte `json:"sealed,omitempty"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("issuer %q: %v", k, err)
		}
		if len(r.Sealed) == 0 {
			return nil, nil
		}
		var is credentials.Issuer
		if err := json.Unmarshal(r.Issuer, &is); err != nil {
			return nil, fmt.Errorf("issuer %q: %v", k, err)
		}
		id := string(k)
		if is.ID() != id {
			return nil, fmt.Errorf("issuer record %q has ID %q", k, is.ID())
		}
		for i, sealed := range r.Sealed {
			j, err := strconv.Atoi(i)
			if err != nil || is.JWKS == nil || j < 0 || j >= len(is.JWKS.Keys) || is.JWKS.Keys[j].Kty != "oct" {
				return nil, fmt.Errorf("issuer %q: a sealed secret for %q, which is not an oct key", id, i)
			}
			ad := issuerKeyAD(id, is.JWKS.Keys[j].Kid)
			re, err := reseal(from, to, sealed, ad)
			if err != nil {
				return nil, fmt.Errorf("issuer %q: the secret of jwks.keys[%d] (kid %q) %v", id, j, is.JWKS.Keys[j].Kid, err)
			}
			r.Sealed[i] = re
			n++
		}
		return json.Marshal(&r)
	}); err != nil {
		return 0, err
	}
	if err := rewriteBucket(tx.Bucket(bucketHMACKeys), func(k, v []byte) ([]byte, error) {
		var r struct {
			Key    json.RawMessage `json:"key"`
			Sealed []byte          `json:"sealed"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, fmt.Errorf("HMAC key %q: %v", k, err)
		}
		var key credentials.HMACKey
		if err := json.Unmarshal(r.Key, &key); err != nil {
			return nil, fmt.Errorf("HMAC key %q: %v", k, err)
		}
		id := string(k)
		if key.ID != id {
			return nil, fmt.Errorf("HMAC key record %q has ID %q", k, key.ID)
		}
		re, err := reseal(from, to, r.Sealed, hmacKeyAD(id))
		if err != nil {
			return nil, fmt.Errorf("HMAC key %q: the secret %v", id, err)
		}
		r.Sealed = re
		n++
		return json.Marshal(&r)
	}); err != nil {
		return 0, err
	}
	if n == 0 && check == nil {
		return 0, errNoChange
	}
	return n, m.Put(metaKeyCheck, to.check)
}

// rewriteBucket replaces each value of b (nil: no bucket) by what f
// returns for it (nil: left as it is). The new values are collected
// first and written after the walk: a bucket must not change while
// ForEach walks it.
func rewriteBucket(b *bbolt.Bucket, f func(k, v []byte) ([]byte, error)) error {
	if b == nil {
		return nil
	}
	type put struct{ k, v []byte }
	var puts []put
	err := b.ForEach(func(k, v []byte) error {
		nv, err := f(k, v)
		if err != nil || nv == nil {
			return err
		}
		puts = append(puts, put{append([]byte(nil), k...), nv})
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range puts {
		if err := b.Put(p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

// reseal opens sealed with from and seals the plaintext with to, both
// bound to ad.
func reseal(from, to *sealer, sealed, ad []byte) ([]byte, error) {
	plain, err := from.open(sealed, ad)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	if len(plain) == 0 {
		return nil, errors.New("is empty")
	}
	return to.seal(plain, ad)
}
