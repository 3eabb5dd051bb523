package credentials

import (
	"runtime"
	"syscall"
	"unsafe"
)

// hugePage is the size of a transparent huge page on the platforms
// keygate runs on (x86-64, arm64 with 4 KiB pages).
const hugePage = 2 << 20

// allocSlots returns a zeroed table of n slots owned by kt. A table of
// 4 MiB or more is mapped outside the Go heap, aligned to and rounded up
// to huge pages and advised MADV_HUGEPAGE, so that with transparent huge
// pages in "madvise" (or "always") mode a random lookup needs one TLB
// entry per 2 MiB instead of per 4 KiB; it is unmapped when kt is
// collected. Smaller tables, and any table the kernel refuses to map,
// are a Go slice.
func allocSlots(kt *keyTable, n int) []slot {
	size := n * int(unsafe.Sizeof(slot{}))
	if size < 4<<20 {
		return make([]slot, n)
	}
	size = (size + hugePage - 1) &^ (hugePage - 1)
	mem, err := syscall.Mmap(-1, 0, size+hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return make([]slot, n)
	}
	off := 0
	if r := uintptr(unsafe.Pointer(unsafe.SliceData(mem))) % hugePage; r != 0 {
		off = int(hugePage - r)
	}
	table := mem[off : off+size]
	_ = syscall.Madvise(table, _MADV_HUGEPAGE) // advice only: 4 KiB pages work too
	runtime.AddCleanup(kt, func(mem []byte) { _ = syscall.Munmap(mem) }, mem)
	return unsafe.Slice((*slot)(unsafe.Pointer(unsafe.SliceData(table))), n)
}

// _MADV_HUGEPAGE is missing from package syscall on some architectures.
const _MADV_HUGEPAGE = 14
