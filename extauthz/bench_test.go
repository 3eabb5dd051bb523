package extauthz

import (
	"context"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/credentials"
)

// benchServer returns an in-process Server over a real bolt store and an
// Envoy-shaped request presenting the key named key ("" for none).
func benchServer(b testing.TB, key string) (*Server, *authv3.CheckRequest) {
	st, keys := newStore(b)
	srv := NewServer(&credentials.Checker{Source: st}, Options{})
	c := checkCase{name: "bench", hdr: map[string]string{}}
	if key != "" {
		c.hdr["x-api-key"] = keys[key]
	}
	return srv, c.request(strings.NewReplacer())
}

func benchCheck(b *testing.B, srv interface {
	Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error)
}, req *authv3.CheckRequest, want string) {
	ctx := context.Background()
	if resp, err := srv.Check(ctx, req); err != nil || decisionOf(resp) != want {
		b.Fatalf("Check = %v, %v; want %s", resp, err, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckAllow measures an allow by X-API-Key (in process, no gRPC).
func BenchmarkCheckAllow(b *testing.B) {
	srv, req := benchServer(b, "acme")
	benchCheck(b, srv, req, "ok")
}

// BenchmarkCheckDeny measures a deny of an unknown, well-formed key.
func BenchmarkCheckDeny(b *testing.B) {
	srv, req := benchServer(b, "")
	req.Attributes.Request.Http.Headers["x-api-key"] = credentials.GenerateAPIKey()
	benchCheck(b, srv, req, "invalid_api_key")
}

// BenchmarkCheckNoop measures NoopServer, the floor of a Check.
func BenchmarkCheckNoop(b *testing.B) {
	_, req := benchServer(b, "acme")
	benchCheck(b, NoopServer{}, req, "ok")
}

// BenchmarkCheckAllowGRPC measures an allow through a real gRPC client and
// server over bufconn, with parallel callers.
func BenchmarkCheckAllowGRPC(b *testing.B) {
	srv, req := benchServer(b, "acme")
	benchGRPC(b, dial(b, srv), req)
}

// BenchmarkCheckNoopGRPC is BenchmarkCheckAllowGRPC against NoopServer.
func BenchmarkCheckNoopGRPC(b *testing.B) {
	_, req := benchServer(b, "acme")
	benchGRPC(b, dial(b, NoopServer{}), req)
}

func benchGRPC(b *testing.B, client authv3.AuthorizationClient, req *authv3.CheckRequest) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Check(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
