// Package bolt implements credentials.Store on a bbolt file.
//
// Layout of the file (all records are JSON):
//
//	meta         "format" = "keygate", "version" = "1", "revision" (8-byte
//	             big-endian), "updated" (RFC 3339), "master_key_check"
//	             (HMAC-SHA256(master key, "keygate master key check v1"),
//	             written with the first encrypted secret)
//	tenants      slug → credentials.Tenant
//	clients      client ID → credentials.Client
//	apikeys      key ID → credentials.APIKey (digest only; no last use)
//	sums         SHA-256 digest (32 raw bytes) → key ID
//	usage        key ID → last use time and source IP (not part of the revision)
//	audit        revision (8-byte big-endian) → credentials.AuditEntry
//	issuers      "tenant/name" → {"issuer": credentials.Issuer without
//	             secrets, "sealed": {"<i>": base64(nonce || ciphertext)}}:
//	             the secret of the oct key at index i of jwks.keys, encrypted
//	             under the master key
//	revocations  jti → credentials.Revocation
//	hmackeys     key ID → {"key": credentials.HMACKey without its secret,
//	             "sealed": base64(nonce || ciphertext)}: the secret bytes,
//	             encrypted under the master key
//
// The issuers, revocations and hmackeys buckets came after the first
// files of format version 1 were written: a file without them has no
// issuers, revocations or HMAC keys, and the first Apply that writes one
// creates the bucket (Open still writes nothing).
//
// Rules of the package:
//   - Byte slices read from bbolt are only valid inside their transaction:
//     they are copied or decoded before the transaction ends, never kept.
//   - Recoverable secrets (the secrets of issuers' oct keys, base64url in
//     credentials.JWK.K, and of HMAC keys, standard base64 in
//     credentials.HMACKey.Secret) never reach the file in plaintext: each
//     is encrypted with AES-256-GCM under Options.MasterKey with a random
//     12-byte nonce, and the associated data binds it to its record and
//     place ("keygate/v1/issuer-jwk\x00" + tenant/name + "\x00" + kid for
//     an oct key, "keygate/v1/hmac-key\x00" + key ID for an HMAC key), so
//     a ciphertext moved to another record does not decrypt (seal.go holds
//     the helpers). Secrets are never logged, audited or put in errors.
//   - Master key: a store holding encrypted secrets (or the master key
//     check) opens only with the key they were encrypted with: without a
//     key Open fails with ErrMasterKeyRequired, with another key (the
//     check differs) with ErrWrongMasterKey, and a secret that does not
//     decrypt (altered, or moved from another record) is an Open error
//     naming its issuer or HMAC key; Open never loads an issuer or an HMAC
//     key with an empty secret. Apply refuses (invalid) to store an oct
//     key or an HMAC key without a master key (even one that would keep
//     its stored secret).
//   - RotateMasterKey re-encrypts every sealed secret under a new master
//     key, offline (it refuses a file another process holds, such as a
//     running keygate), in one bbolt transaction with the new check value:
//     the file has all secrets under the old key or all under the new one,
//     and a failed rotation (wrong old key, a secret that does not
//     decrypt) writes nothing. A store with neither secrets nor a check is
//     left untouched.
//   - Open decrypts the secrets; the in-memory issuers and HMAC keys and
//     the index (credentials.IndexData.Issuers and HMACKeys,
//     IndexDelta.Issuers and HMACKeys) carry them, for the verifiers.
//     Reads (Issuer, Issuers, HMACKey, HMACKeys, Export) return records
//     without them (credentials.Issuer.Redacted, HMACKey.Redacted). An
//     upsert's oct key without k keeps the sealed secret of the issuer's
//     stored oct key with the same kid (the nth of that kid for the nth
//     given); an HMAC key without a secret keeps its stored one (a new
//     key without one is invalid). An upsert identical to the stored
//     record, secret included, changes nothing.
//   - HMAC keys: every key's client exists; deleting a client deletes its
//     HMAC keys (IndexDelta.DeleteHMACKeys names them, as it names keys
//     deleted explicitly, by ReplaceHMACKeysOf or by Replace); a tenant
//     has at most one enabled (not disabled) timestamp-body key across
//     its clients, whatever their expiry or the client's state.
//   - Revocations are not kept in memory: the index holds them, and
//     Revocations and Export read them from the file. Revocations are
//     only added (Replace never deletes them; an existing jti keeps the
//     later expiry); every Apply that commits deletes the ones that
//     expired (which alone is no change), and reads skip them.
//   - Tenants, clients, issuers and HMAC keys (few) live in memory,
//     decoded. API-key
//     records do not: the credentials.Index holds what Check needs of every key (and its
//     ID, client and digest, which Apply uses to cascade deletes and check
//     digests); the records themselves are read from the file, in a read
//     transaction, by Apply (only those it changes) and by the API-key
//     reads (which hold the writer mutex, so records and index are of one
//     revision, and fail unavailable once the store is closed).
//     Each state is immutable once published: Apply clones the tenant,
//     client, issuer and HMAC-key maps it changes (copy-on-write), derives the index
//     (credentials.Index.With) in time proportional to the change, not to
//     the number of keys (a Replace rebuilds it), writes the
//     difference in one bbolt Update transaction (fsynced on commit), and
//     only after the commit publishes the new state and its
//     credentials.Index through an atomic pointer.
//     Index is a lock-free atomic load, so a Check never waits for a write
//     and never sees a mix of two revisions.
//   - A failed Apply changes nothing: the transaction is rolled back and the
//     previous state and index are still served.
//   - Writers (Apply, FlushUsage) are serialized by one mutex; Check and
//     the tenant, client, issuer, HMAC-key and revocation reads never lock.
//   - Digest uniqueness is checked against the published Index, which holds
//     every stored key (every key's client exists; Apply enforces it).
//   - Last-used times are recorded in memory by Check (credentials.Usage)
//     and written by FlushUsage in one transaction, periodically and on
//     Close. They do not change the revision and are not audited.
//   - Open never returns an empty store for a file it cannot read: a file
//     without keygate's format marker, a truncated or corrupted file, a
//     record that does not decode, or a panic inside bbolt (corrupt pages)
//     is an error naming the file. Open writes nothing to such a file. (When
//     bbolt panics inside its own Open, its file descriptor and lock cannot
//     be released; the process should exit, as keygate serve does.)
//   - Once loaded, Open drops the process's mapping of the pages it read
//     (releaseMapping): Check never reads the file, and a read or write
//     maps the pages it needs again.
//   - Open waits at most 1s for the file lock, then reports that another
//     process holds the store.
//   - The audit log never holds secrets or key digests: only the actor, the
//     time, counts and record IDs (at most maxAuditIDs per list).
//   - Errors returned to callers are *credentials.Error; bbolt and I/O
//     errors are wrapped as unavailable or internal.
package bolt
