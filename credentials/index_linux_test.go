package credentials

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestSlotsHugePages checks that a large key table is mapped outside the
// Go heap and, where transparent huge pages are enabled, backed by them.
func TestSlotsHugePages(t *testing.T) {
	d, _ := benchData(200_000) // a table of 9 MiB
	idx := BuildIndex(d, nil)
	slots := idx.base.slots
	start := uintptr(unsafe.Pointer(unsafe.SliceData(slots)))
	if start%hugePage != 0 {
		t.Errorf("table at %#x is not aligned to a huge page", start)
	}
	if mode, _ := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); !strings.Contains(string(mode), "[always]") && !strings.Contains(string(mode), "[madvise]") {
		t.Skipf("transparent huge pages: %s", mode)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	found := false
	var in bool
	for _, line := range strings.Split(string(smaps), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			lo, hi, _ := strings.Cut(f[0], "-")
			a, _ := strconv.ParseUint(lo, 16, 64)
			b, _ := strconv.ParseUint(hi, 16, 64)
			in = uint64(start) >= a && uint64(start) < b
			continue
		}
		if rest, ok := strings.CutPrefix(line, "AnonHugePages:"); ok && in {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			t.Logf("mapping of the table: AnonHugePages %d kB", kb)
			found = kb >= 2048
		}
	}
	if !found {
		// Advice, not a promise: the kernel may have no free huge page.
		t.Skip("the key table is not backed by huge pages (none granted)")
	}
	runtime.KeepAlive(idx)
}
