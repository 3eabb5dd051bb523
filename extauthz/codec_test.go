package extauthz

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/keygate/keygate/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
)

// TestPreencodedResponses checks that every shared response is sent as
// bytes that decode to exactly that response, and that per-request
// responses still go through the proto codec.
func TestPreencodedResponses(t *testing.T) {
	s, _ := benchServer(t, "acme")
	codec := preencodedCodec{s: s, base: encoding.GetCodecV2("proto")}
	var shared []*authv3.CheckResponse
	for i := range s.denies {
		for _, r := range s.denies[i] {
			if r != nil {
				shared = append(shared, r)
			}
		}
	}
	id := &credentials.Identity{TenantID: "acme", Subject: "cl_a", ClientID: "cl_a", KeyID: "ak_a", Method: "apikey", Scopes: "read"}
	allow := s.allow(id, stripAPIKey)
	shared = append(shared, allow)
	for _, r := range shared {
		if s.wireOf(r) == nil {
			t.Fatalf("shared response not pre-encoded: %v", r)
		}
		bs, err := codec.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got authv3.CheckResponse
		if err := proto.Unmarshal(bs.Materialize(), &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, r) {
			t.Fatalf("pre-encoded bytes decode to\n%v\nwant\n%v", &got, r)
		}
	}
	// A response built for one request is not in the tables.
	perRequest := buildAllow(id, stripAuthorization)
	if s.wireOf(perRequest) != nil {
		t.Fatal("a per-request response was found pre-encoded")
	}
	bs, err := codec.Marshal(perRequest)
	if err != nil {
		t.Fatal(err)
	}
	var got authv3.CheckResponse
	if err := proto.Unmarshal(bs.Materialize(), &got); err != nil || !proto.Equal(&got, perRequest) {
		t.Fatalf("fallback marshal: %v", err)
	}
}
