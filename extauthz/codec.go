package extauthz

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec wrapped below
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// ServerOption returns the gRPC server option that sends the server's
// shared responses (the deny table and the cached allows) as bytes encoded
// once, instead of marshalling the same message on every Check. Every
// other message goes through gRPC's proto codec unchanged.
func (s *Server) ServerOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(preencodedCodec{s: s, base: encoding.GetCodecV2("proto")})
}

type preencodedCodec struct {
	s    *Server
	base encoding.CodecV2
}

func (c preencodedCodec) Name() string { return c.base.Name() }

func (c preencodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*authv3.CheckResponse); ok {
		if b := c.s.wireOf(r); b != nil {
			return mem.BufferSlice{mem.SliceBuffer(b)}, nil
		}
	}
	return c.base.Marshal(v)
}

func (c preencodedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return c.base.Unmarshal(data, v)
}

// encode returns the wire form of a shared response.
func encode(r *authv3.CheckResponse) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil // marshalled per call instead
	}
	return b
}

// wireOf returns the bytes encoded once for the shared response r, or nil
// when r is built per request (or the allow cache moved on to a new index).
func (s *Server) wireOf(r *authv3.CheckResponse) []byte {
	if b, ok := s.denyWire[r]; ok {
		return b
	}
	if c := s.allowCache.Load(); c != nil {
		if b, ok := c.wire.Load(r); ok {
			return b.([]byte)
		}
	}
	return nil
}
