package bolt

import (
	"iter"
	"maps"

	"github.com/keygate/keygate/credentials"
)

// keySet is the API-key records of a state by ID: a base map shared by
// the states derived from the one it was made for, plus the records
// changed since (nil: deleted). Deriving a state costs the size of the
// change, not of a million keys; the changes are folded into a new base
// when they outgrow a sixteenth of it. Like the rest of a state, a keySet
// is never modified once published.
type keySet struct {
	base map[string]*credentials.APIKey
	over map[string]*credentials.APIKey
	n    int
}

func newKeySet(m map[string]*credentials.APIKey) *keySet {
	return &keySet{base: m, n: len(m)}
}

// get returns the record of key id, or nil.
func (s *keySet) get(id string) *credentials.APIKey {
	if k, ok := s.over[id]; ok {
		return k
	}
	return s.base[id]
}

// size returns the number of keys.
func (s *keySet) size() int { return s.n }

// all iterates over the keys by ID, in no particular order.
func (s *keySet) all() iter.Seq2[string, *credentials.APIKey] {
	return func(yield func(string, *credentials.APIKey) bool) {
		for id, k := range s.base {
			if _, changed := s.over[id]; !changed && !yield(id, k) {
				return
			}
		}
		for id, k := range s.over {
			if k != nil && !yield(id, k) {
				return
			}
		}
	}
}

// with returns the set of s with the keys of put added or replaced and
// the keys named by gone removed.
func (s *keySet) with(put []*credentials.APIKey, gone []string) *keySet {
	if len(put)+len(gone) == 0 {
		return s
	}
	n := &keySet{base: s.base, n: s.n}
	if len(s.over)+len(put)+len(gone) > max(1024, len(s.base)/16) {
		n.base = make(map[string]*credentials.APIKey, s.n+len(put))
		for id, k := range s.all() {
			n.base[id] = k
		}
		for _, id := range gone {
			delete(n.base, id)
		}
		for _, k := range put {
			n.base[k.ID] = k
		}
		n.n = len(n.base)
		return n
	}
	n.over = make(map[string]*credentials.APIKey, len(s.over)+len(put)+len(gone))
	maps.Copy(n.over, s.over)
	for _, id := range gone {
		if s.get(id) != nil {
			n.n--
		}
		n.over[id] = nil
	}
	for _, k := range put {
		if n.get(k.ID) == nil {
			n.n++
		}
		n.over[k.ID] = k
	}
	return n
}
