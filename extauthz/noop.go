package extauthz

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
)

// noopResponse is the constant allow of NoopServer.
var noopResponse = &authv3.CheckResponse{
	Status:       okStatus,
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

// NoopServer is an Authorization service that allows every request with a
// constant response and looks at nothing. It is the baseline of the
// benchmarks and the load test (the cost of gRPC and Envoy without
// keygate's decision); never deploy it in front of a real service.
type NoopServer struct {
	authv3.UnimplementedAuthorizationServer
}

// Check returns the same OK response for every request.
func (NoopServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return noopResponse, nil
}

// Register registers the no-op service as envoy.service.auth.v3.Authorization on g.
func (n NoopServer) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, n) }
