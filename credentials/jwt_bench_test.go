package credentials

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkCheckJWT measures a Check of one bearer token per algorithm:
// cached (the verified token is found by its SHA-256) and uncached
// (JWTCacheSize -1: every Check decodes and verifies the same token).
// BenchmarkCheckAllow is the API-key equivalent.
func BenchmarkCheckJWT(b *testing.B) {
	w := newJWTWorld(b)
	k := w.k
	tokens := []struct{ name, tok string }{
		{"HS256", mint(b, jwt.SigningMethodHS256, k.hmac, "", djangoClaims())},
		{"RS256", mint(b, jwt.SigningMethodRS256, k.rsaA, "rsa-a", mainClaims())},
		{"ES256", mint(b, jwt.SigningMethodES256, k.ec, "ec-1", mainClaims())},
		{"EdDSA", mint(b, jwt.SigningMethodEdDSA, k.ed, "ed-1", mainClaims())},
	}
	ctx := context.Background()
	for _, tc := range tokens {
		b.Run(tc.name, func(b *testing.B) {
			for _, mode := range []struct {
				name string
				size int
			}{{"cached", 0}, {"uncached", -1}} {
				b.Run(mode.name, func(b *testing.B) {
					c := &Checker{Source: w.src, Now: w.clock.Now, Keys: w.fake, JWTCacheSize: mode.size}
					r := &Request{Policy: DefaultPolicy, Authorization: "Bearer " + tc.tok, HasAuthorization: true}
					if d, err := c.Check(ctx, r); err != nil || !d.Allowed() {
						b.Fatalf("%q (%s), %v", d.Code, d.Reason, err)
					}
					b.ReportAllocs()
					for b.Loop() {
						d, err := c.Check(ctx, r)
						if err != nil || !d.Allowed() {
							b.Fatal(d.Reason, err)
						}
					}
				})
			}
		})
	}
}
