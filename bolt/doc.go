// Package bolt implements credentials.Store on a bbolt file.
//
// Layout of the file (all records are JSON):
//
//	meta      "format" = "keygate", "version" = "1", "revision" (8-byte
//	          big-endian), "updated" (RFC 3339)
//	tenants   slug → credentials.Tenant
//	clients   client ID → credentials.Client
//	apikeys   key ID → credentials.APIKey (digest only; no last use)
//	sums      SHA-256 digest (32 raw bytes) → key ID
//	usage     key ID → last use time and source IP (not part of the revision)
//	audit     revision (8-byte big-endian) → credentials.AuditEntry
//
// Rules of the package:
//   - Byte slices read from bbolt are only valid inside their transaction:
//     they are copied or decoded before the transaction ends, never kept.
//   - Tenants and clients live in memory, decoded. API-key records do not:
//     the credentials.Index holds what Check needs of every key (and its
//     ID, client and digest, which Apply uses to cascade deletes and check
//     digests); the records themselves are read from the file, in a read
//     transaction, by Apply (only those it changes) and by the API-key
//     reads (which hold the writer mutex, so records and index are of one
//     revision, and fail unavailable once the store is closed).
//     Each state is immutable once published: Apply clones the tenant and
//     client maps it changes (copy-on-write), derives the index
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
//     the tenant and client reads never lock.
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
