package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/credentials"
)

// seedJWT registers an issuer of tenant "bench" with one inline key for
// alg and returns a token it signed: the kind of token an OIDC provider
// (RS256, ES256, EdDSA) or a Django app (HS256) hands out.
func seedJWT(ctx context.Context, api *admin.Client, alg string) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var (
		jwk  credentials.JWK
		sign any
	)
	switch alg {
	case "HS256":
		secret := make([]byte, 50)
		rand.Read(secret)
		jwk, sign = credentials.JWK{Kty: "oct", K: b64(secret)}, secret
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return "", err
		}
		jwk = credentials.JWK{Kty: "RSA", N: b64(k.N.Bytes()), E: b64(big.NewInt(int64(k.E)).Bytes())}
		sign = k
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", err
		}
		pub, _ := k.PublicKey.Bytes() // 0x04 || X || Y
		jwk = credentials.JWK{Kty: "EC", Crv: "P-256", X: b64(pub[1:33]), Y: b64(pub[33:])}
		sign = k
	case "EdDSA":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		jwk, sign = credentials.JWK{Kty: "OKP", Crv: "Ed25519", X: b64(pub)}, priv
	default:
		return "", fmt.Errorf("unknown --alg %q (HS256, RS256, ES256 or EdDSA)", alg)
	}
	jwk.Kid = "bench-1"
	_, err := api.Changes(ctx, &credentials.ChangeBatch{Upsert: credentials.Snapshot{Issuers: []credentials.Issuer{{
		Tenant: "bench", Name: "idp", Issuer: "https://idp.bench.example", Audiences: []string{"api"},
		Algorithms: []string{alg}, JWKS: &credentials.JWKS{Keys: []credentials.JWK{jwk}},
	}}}}, nil)
	if err != nil {
		return "", err
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims{
		"iss": "https://idp.bench.example", "aud": "api", "sub": "user-8412", "azp": "cl_bench",
		"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(), "jti": "bench-token-1",
		"scope": "read:projects write:projects",
	})
	tok.Header["kid"] = "bench-1"
	return tok.SignedString(sign)
}
