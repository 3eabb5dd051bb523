package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/credentials"
	"google.golang.org/protobuf/proto"
)

// A signed request can be used once (keygate refuses replays), so the
// HMAC modes sign every request: each worker keeps its own copy of the
// encoded CheckRequest and rewrites, in place, the few bytes that change
// (created, nonce and signature for RFC 9421; timestamp, a body counter
// and signature for the legacy scheme). Both servers get the same
// requests, so the client's signing cost is the same for both.

// Placeholders in the encoded template, each unique and of the final
// length of what replaces it.
const (
	phCreated = "CREATED000"                                   // 10 digits of Unix seconds
	phNonce   = "NONCE00000000000000000"                       // 22 characters
	phSig     = "SIG000000000000000000000000000000000000000==" // base64 of 32 bytes
	phLegSig  = "LEGSIG0000000000000000000000000000000000000000000000000000000000"
	phCounter = "COUNTER000000000" // 16 characters at the end of the legacy body
)

// hmacTemplate is a CheckRequest encoded once with placeholders, and how
// to sign a copy of it.
type hmacTemplate struct {
	wire   []byte
	offs   map[string]int
	secret []byte
	legacy bool
	// RFC 9421: the signature base without created and nonce.
	basePrefix string // lines up to "@signature-params": (...);created=
	// legacy: the body as sent (with the counter placeholder).
	body []byte
}

// seedHMAC stores an HMAC key for cl_bench and returns a template of
// signed POST requests with a body of bodySize bytes.
func seedHMAC(ctx context.Context, api *admin.Client, scheme string, bodySize int) (*hmacTemplate, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	id := "hk_bench"
	_, err := api.Changes(ctx, &credentials.ChangeBatch{Upsert: credentials.Snapshot{Clients: []credentials.SnapshotClient{{
		Client:   credentials.Client{ID: "cl_bench", Tenant: "bench", Name: "bench", Scopes: []string{"read:*", "write:projects"}, Roles: []string{"reader"}},
		HMACKeys: &[]credentials.HMACKey{{ID: id, Scheme: scheme, Secret: base64.StdEncoding.EncodeToString(secret)}},
	}}}}, nil)
	if err != nil {
		return nil, err
	}
	body := bytes.Repeat([]byte("x"), bodySize)
	req := envoyRequest("")
	hr := req.Attributes.Request.Http
	hr.Method, hr.Path = "POST", "/v1/events?source=bench"
	h := hr.Headers
	delete(h, "x-api-key")
	h[":method"], h[":path"] = "POST", hr.Path
	h["content-type"] = "application/json"
	h["content-length"] = strconv.Itoa(bodySize)
	req.Attributes.ContextExtensions = map[string]string{"keygate.methods": "hmac", "keygate.scopes": "write:projects"}
	t := &hmacTemplate{secret: secret, legacy: scheme == credentials.SchemeTimestampBody}
	if t.legacy {
		copy(body[len(body)-len(phCounter):], phCounter)
		h["x-timestamp"], h["x-signature"], h["x-tenant-id"] = phCreated, phLegSig, "bench"
		t.body = body
	} else {
		sum := sha256.Sum256(body)
		digest := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
		h["content-digest"] = digest
		params := `("@method" "@authority" "@path" "@query" "content-digest");created=`
		h["signature-input"] = "sig1=" + params + phCreated + `;keyid="` + id + `";alg="hmac-sha256";nonce="` + phNonce + `"`
		h["signature"] = "sig1=:" + phSig + ":"
		t.basePrefix = "\"@method\": POST\n\"@authority\": api.example.com\n\"@path\": /v1/events\n\"@query\": ?source=bench\n" +
			"\"content-digest\": " + digest + "\n\"@signature-params\": " + params
	}
	hr.RawBody = body
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, err
	}
	t.wire, t.offs = wire, map[string]int{}
	for _, ph := range []string{phCreated, phNonce, phSig, phLegSig, phCounter} {
		i := bytes.Index(wire, []byte(ph))
		if i < 0 {
			continue
		}
		if bytes.Contains(wire[i+1:], []byte(ph)) {
			return nil, fmt.Errorf("placeholder %s occurs twice", ph)
		}
		t.offs[ph] = i
	}
	return t, nil
}

var benchNonce atomic.Uint64

// signer returns a function that re-signs one worker's own copy of the
// template and returns it, ready to send.
func (t *hmacTemplate) signer() func() *wireRequest {
	buf := append([]byte(nil), t.wire...)
	w := &wireRequest{b: buf}
	mac := hmac.New(sha256.New, t.secret)
	var sum [sha256.Size]byte
	var body []byte
	if t.legacy {
		body = append([]byte(nil), t.body...)
	}
	return func() *wireRequest {
		created := strconv.FormatInt(time.Now().Unix(), 10)
		copy(buf[t.offs[phCreated]:], created)
		mac.Reset()
		if t.legacy {
			counter := fmt.Sprintf("%016d", benchNonce.Add(1))
			copy(buf[t.offs[phCounter]:], counter)
			copy(body[len(body)-len(counter):], counter)
			mac.Write([]byte(created))
			mac.Write([]byte{'.'})
			mac.Write(body)
			hex.Encode(buf[t.offs[phLegSig]:], mac.Sum(sum[:0]))
			return w
		}
		nonce := fmt.Sprintf("%022d", benchNonce.Add(1))
		copy(buf[t.offs[phNonce]:], nonce)
		mac.Write([]byte(t.basePrefix))
		mac.Write([]byte(created))
		mac.Write([]byte(`;keyid="hk_bench";alg="hmac-sha256";nonce="`))
		mac.Write([]byte(nonce))
		mac.Write([]byte{'"'})
		base64.StdEncoding.Encode(buf[t.offs[phSig]:], mac.Sum(sum[:0]))
		return w
	}
}
