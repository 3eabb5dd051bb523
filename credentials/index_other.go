//go:build !linux

package credentials

// allocSlots returns a zeroed table of n slots owned by kt.
func allocSlots(kt *keyTable, n int) []slot { return make([]slot, n) }
