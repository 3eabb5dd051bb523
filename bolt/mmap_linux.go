package bolt

import (
	"os"
	"syscall"

	bbolt "go.etcd.io/bbolt"
)

// releaseMapping drops this process's mapping of the first size bytes of
// db's file (MADV_DONTNEED on bbolt's read-only shared mapping; the file
// and the page cache are untouched, and a later read maps the pages
// again). Open reads every page once to decode the records and, with the
// API keys in the index, does not need them again: without this, a
// million keys kept ~700 MiB of the file resident in the process.
func releaseMapping(db *bbolt.DB, size int64) {
	info := db.Info()
	n := uintptr(size) &^ uintptr(os.Getpagesize()-1)
	if info.Data == 0 || n == 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, info.Data, n, syscall.MADV_DONTNEED) // advice only
}
