//go:build !linux

package bolt

import bbolt "go.etcd.io/bbolt"

// releaseMapping does nothing on this platform.
func releaseMapping(db *bbolt.DB, size int64) {}
