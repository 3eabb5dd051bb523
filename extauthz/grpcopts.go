package extauthz

import (
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ServerOptions are the gRPC server options keygate serves Check with.
// Stream workers are kept well above the requests usually in flight: a
// Check served on a fresh goroutine pays for growing its stack (an HMAC
// Check goes deep enough to be copied once), a worker's stack has grown
// already.
// The benchmark's no-op server uses the same, so the two compare like for
// like. maxRecv bounds the size of a CheckRequest (a larger one is refused
// with RESOURCE_EXHAUSTED before it is decoded).
func ServerOptions(maxRecv int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxConcurrentStreams(1024),
		grpc.NumStreamWorkers(uint32(max(64, 16*runtime.GOMAXPROCS(0)))),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	}
}
