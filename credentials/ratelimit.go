package credentials

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// RateLimit is "N/period": a bucket of N tokens refilled evenly over the
// period. The zero value means no limit.
type RateLimit struct {
	N      int64
	Period time.Duration
}

// ParseRateLimit parses "N/second|minute|hour|day" (also "N/s", "N/m",
// "N/h", "N/d").
func ParseRateLimit(s string) (RateLimit, error) {
	n, unit, ok := strings.Cut(s, "/")
	if !ok {
		return RateLimit{}, fmt.Errorf("%q is not N/second|minute|hour|day", s)
	}
	v, err := strconv.ParseInt(n, 10, 64)
	if err != nil || v < 1 || v > 1_000_000_000 || n[0] == '+' {
		return RateLimit{}, fmt.Errorf("%q: N must be a whole number from 1 to 1000000000", s)
	}
	var p time.Duration
	switch unit {
	case "second", "s", "sec":
		p = time.Second
	case "minute", "m", "min":
		p = time.Minute
	case "hour", "h":
		p = time.Hour
	case "day", "d":
		p = 24 * time.Hour
	default:
		return RateLimit{}, fmt.Errorf("%q: period must be second, minute, hour or day", s)
	}
	return RateLimit{N: v, Period: p}, nil
}

func (r RateLimit) String() string {
	if r.N == 0 {
		return ""
	}
	var u string // a switch, not a map literal, which allocated on every rate_limited deny
	switch r.Period {
	case time.Second:
		u = "second"
	case time.Minute:
		u = "minute"
	case time.Hour:
		u = "hour"
	case 24 * time.Hour:
		u = "day"
	}
	return strconv.FormatInt(r.N, 10) + "/" + u
}

// bucket is a lock-free token bucket (GCRA): tat is the theoretical
// arrival time in Unix nanoseconds.
type bucket struct {
	limit    RateLimit
	interval int64 // period / N
	burst    int64 // period - interval: N tokens at most
	tat      atomic.Int64
}

func newBucket(l RateLimit) *bucket {
	iv := int64(l.Period) / l.N
	if iv < 1 {
		iv = 1
	}
	return &bucket{limit: l, interval: iv, burst: int64(l.Period) - iv}
}

// take spends one token at now. It returns 0 when allowed, or how long
// until a token is available.
func (b *bucket) take(now int64) time.Duration {
	for {
		old := b.tat.Load()
		tat := old
		if tat < now {
			tat = now
		}
		if wait := tat - now - b.burst; wait > 0 {
			return time.Duration(wait)
		}
		if b.tat.CompareAndSwap(old, tat+b.interval) {
			return 0
		}
	}
}
