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
	// CheckResponse field 1 is google.rpc.Status, whose field 1 is the code.
	status, _, err := firstField(data.Materialize(), 1)
	if err != nil {
		return err
	}
	_, code, err := firstField(status, 1)
	r.code = int32(code)
	return err
}

// firstField returns field num of the message b: its bytes when it is
// length-delimited, its value when it is a varint; zero values when absent.
func firstField(b []byte, num protowire.Number) (raw []byte, v uint64, err error) {
	for len(b) > 0 {
		n, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return nil, 0, errors.New("bad CheckResponse")
		}
		b = b[k:]
		switch {
		case n == num && typ == protowire.BytesType:
			raw, k = protowire.ConsumeBytes(b)
		case n == num && typ == protowire.VarintType:
			v, k = protowire.ConsumeVarint(b)
		default:
			k = protowire.ConsumeFieldValue(n, typ, b)
			if k >= 0 {
				b = b[k:]
				continue
			}
		}
		if k < 0 {
			return nil, 0, errors.New("bad CheckResponse")
		}
		return raw, v, nil
	}
	return nil, 0, nil
}

func encodeRequest(m proto.Message) (*wireRequest, error) {
	b, err := proto.Marshal(m)
	return &wireRequest{b: b}, err
}
