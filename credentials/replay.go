package credentials

import (
	"hash/maphash"
	"sync"
)

// DefaultReplayCacheSize is the number of signatures (or nonces) a
// Checker remembers when Checker.ReplayCacheSize is 0.
const DefaultReplayCacheSize = 1 << 20

const replayShards = 16

// replayCache remembers the nonces (RFC 9421) and signatures (without a
// nonce, and the legacy scheme) of verified requests until they could no
// longer pass the time window, so each is accepted once. It is bounded:
// when full of entries that are still live it refuses new ones (the
// request is denied) rather than forget one that an attacker could then
// replay.
//
// Each shard keeps two generations of maps: entries go into cur; every
// period cur becomes prev, and prev is dropped whole once its latest
// expiry has passed, so expiry costs nothing per request. An entry lives
// at least until its own expiry.
type replayCache struct {
	seed   maphash.Seed
	max    int   // entries per shard
	period int64 // seconds between generations
	shards [replayShards]replayShard
}

type replayShard struct {
	mu        sync.Mutex
	cur, prev map[uint64]int64 // hash of the key → expiry, Unix seconds
	curStart  int64            // when cur was started
	curUntil  int64            // the latest expiry in cur
	prevUntil int64            // the latest expiry in prev
	_         [16]byte
}

// newReplayCache returns a cache of about size entries whose generations
// last period seconds (the longest an entry must be kept is a good
// value).
func newReplayCache(size int, period int64) *replayCache {
	rc := &replayCache{seed: maphash.MakeSeed(), max: max(1, size/replayShards), period: max(1, period)}
	for i := range rc.shards {
		rc.shards[i].cur = make(map[uint64]int64)
	}
	return rc
}

// Replay results.
const (
	replayFresh = iota // first use: recorded
	replaySeen         // used before, and its entry is still live
	replayFull         // the cache is full of live entries: refused
)

// check records key as used until exp (Unix seconds) and reports whether
// it was used before, at now.
func (rc *replayCache) check(key string, exp, now int64) int {
	h := maphash.String(rc.seed, key)
	s := &rc.shards[h%replayShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev != nil && now > s.prevUntil {
		s.prev = nil
	}
	if s.curStart == 0 {
		s.curStart = now
	}
	if s.prev == nil && now-s.curStart >= rc.period {
		s.prev, s.prevUntil = s.cur, s.curUntil
		s.cur, s.curStart, s.curUntil = make(map[uint64]int64), now, 0
		if now > s.prevUntil {
			s.prev = nil
		}
	}
	if until, ok := s.cur[h]; ok && until >= now {
		return replaySeen
	}
	if until, ok := s.prev[h]; ok && until >= now {
		return replaySeen
	}
	if len(s.cur)+len(s.prev) >= rc.max {
		if s.prev != nil || now <= s.curUntil {
			return replayFull
		}
		s.cur, s.curStart, s.curUntil = make(map[uint64]int64), now, 0 // all expired
	}
	s.cur[h] = exp
	if exp > s.curUntil {
		s.curUntil = exp
	}
	return replayFresh
}

// size returns the number of entries held (tests).
func (rc *replayCache) size() int {
	n := 0
	for i := range rc.shards {
		s := &rc.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}
