package credentials

import (
	"crypto/sha256"
	"sync"
	"unsafe"
)

// DefaultJWTCacheSize is the number of verified tokens a Checker keeps
// when Checker.JWTCacheSize is 0.
const DefaultJWTCacheSize = 65536

// tokenShards is the number of independently locked parts of a token
// cache (a power of two).
const tokenShards = 32

// tokenCache holds the verified tokens of one index, keyed by the SHA-256
// of the token. A new index starts a new cache, so a revocation, a
// disabled client or a changed issuer drops every cached token at once.
// Entries are also bounded by their exp and, for jwks_uri issuers, by the
// key generation they were verified with.
type tokenCache struct {
	idx      *Index
	perShard int
	shards   [tokenShards]tokenShard
}

type tokenShard struct {
	mu sync.RWMutex
	m  map[[32]byte]*tokenEntry
	_  [40]byte // keep shards on separate cache lines
}

func newTokenCache(idx *Index, size int) *tokenCache {
	c := &tokenCache{idx: idx, perShard: max(1, size/tokenShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*tokenEntry)
	}
	return c
}

func (c *tokenCache) get(sum *[32]byte) *tokenEntry {
	s := &c.shards[sum[0]%tokenShards]
	s.mu.RLock()
	e := s.m[*sum]
	s.mu.RUnlock()
	return e
}

// put stores e, evicting an arbitrary entry of a full shard (map
// iteration order is random, so no caller can pin its tokens).
func (c *tokenCache) put(sum *[32]byte, e *tokenEntry) {
	s := &c.shards[sum[0]%tokenShards]
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[*sum] = e
	s.mu.Unlock()
}

// tokenSum returns the SHA-256 of tok without copying it.
func tokenSum(tok string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
}

// tokenCacheFor returns the token cache of idx, or nil when caching is
// off.
func (c *Checker) tokenCacheFor(idx *Index) *tokenCache {
	if c.JWTCacheSize < 0 {
		return nil
	}
	tc := c.tokens.Load()
	if tc == nil || tc.idx != idx {
		size := c.JWTCacheSize
		if size == 0 {
			size = DefaultJWTCacheSize
		}
		n := newTokenCache(idx, size)
		if c.tokens.CompareAndSwap(tc, n) {
			return n
		}
		if tc = c.tokens.Load(); tc == nil || tc.idx != idx {
			return n // another index won the race: use a private cache
		}
	}
	return tc
}
