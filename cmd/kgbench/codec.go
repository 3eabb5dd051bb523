package main

import (
	"errors"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the codec wrapped below
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The load generator keeps its own CPU per call small and equal for both
// servers: it sends the request encoded once and reads from the answer
// only what it checks, the CheckResponse's status code (Envoy parses the
// rest, not us). Client and servers share the machine's cores, so a
// lighter client lets the servers show what they can do.

// wireRequest is a CheckRequest encoded once.
type wireRequest struct{ b []byte }

// wireResponse holds the status code of a CheckResponse.
type wireResponse struct{ code int32 }

type lightCodec struct{ base encoding.CodecV2 }

func newLightCodec() lightCodec { return lightCodec{base: encoding.GetCodecV2("proto")} }

func (c lightCodec) Name() string { return "proto" }

func (c lightCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*wireRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	return c.base.Marshal(v)
}

func (c lightCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*wireResponse)
	if !ok {
		return c.base.Unmarshal(data, v)
	}
	b := data.Materialize()
	r.code = 0
	// CheckResponse field 1 is google.rpc.Status, whose field 1 is the code.
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errors.New("bad CheckResponse")
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			st, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errors.New("bad CheckResponse status")
			}
			for len(st) > 0 {
				sn, styp, k := protowire.ConsumeTag(st)
				if k < 0 {
					return errors.New("bad status")
				}
				st = st[k:]
				if sn == 1 && styp == protowire.VarintType {
					v, k := protowire.ConsumeVarint(st)
					if k < 0 {
						return errors.New("bad status code")
					}
					r.code = int32(v)
					break
				}
				k = protowire.ConsumeFieldValue(sn, styp, st)
				if k < 0 {
					return errors.New("bad status")
				}
				st = st[k:]
			}
			return nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errors.New("bad CheckResponse")
		}
		b = b[n:]
	}
	return nil
}

func encodeRequest(m proto.Message) (*wireRequest, error) {
	b, err := proto.Marshal(m)
	return &wireRequest{b: b}, err
}
