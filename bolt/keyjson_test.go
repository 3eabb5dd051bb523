package bolt

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/keygate/keygate/credentials"
)

// keyJSONSeeds are records as json.Marshal writes them and as it does
// not (decoded by json.Unmarshal).
func keyJSONSeeds(t testing.TB) [][]byte {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	used := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
	var seeds [][]byte
	for _, k := range []credentials.APIKey{
		{},
		{ID: "ak_1", ClientID: "cl_1", KeySHA256: digest("x")},
		{ID: "ak_2", ClientID: "cl_1", Name: "a key", KeySHA256: digest("y"), Scopes: []string{"read:*", "write:x"},
			ExpiresAt: &exp, Disabled: true, CreatedAt: exp, UpdatedAt: used},
		{ID: "ak_3", Key: "plain", LastUsedAt: &used, LastUsedIP: "2001:db8::1", Scopes: []string{}},
		{ID: "ak_4", Name: `quote " backslash \ tab 	 é <>&`},
	} {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, s := range []string{
		``, `{`, `}`, `{}`, `{} `, ` {}`, `[]`, `null`, `{"id":"ak_1"}x`, `{"id":"ak_1",}`, `{"id":"ak_1" }`,
		`{"ID":"ak_1"}`, `{"id":null}`, `{"scopes":null}`, `{"scopes":[]}`, `{"scopes":["a",]}`, `{"scopes":["a""b"]}`,
		`{"disabled":1}`, `{"disabled":tru}`, `{"disabled":false,"disabled":true}`, `{"unknown":1}`,
		`{"expires_at":"2026-13-01T00:00:00Z"}`, `{"expires_at":"2026-01-01T00:00:00Z"}`, `{"expires_at":null}`,
		`{"created_at":"2026-01-01T00:00:00.5+01:00"}`, `{"id":"\u0061k"}`, "{\"id\":\"a\xffb\"}", "{\"id\":\"a\x01\"}",
		`{"id":1}`, `{"name":"x","name":"y"}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// checkDecodeKey fails t unless decodeKey of data does what json.Unmarshal
// does.
func checkDecodeKey(t *testing.T, data []byte) {
	var got, want credentials.APIKey
	gerr := decodeKey(data, &got)
	werr := json.Unmarshal(data, &want)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: error %v, json.Unmarshal %v", data, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", data, got, want)
	}
}

func TestDecodeKey(t *testing.T) {
	for _, s := range keyJSONSeeds(t) {
		checkDecodeKey(t, s)
	}
	// The fast path is taken for what json.Marshal writes.
	k := credentials.APIKey{ID: "ak_1", ClientID: "cl_1", Name: "n", KeySHA256: digest("x"), Scopes: []string{"a"}, CreatedAt: time.Now().UTC()}
	b, _ := json.Marshal(k)
	var got credentials.APIKey
	if !fastDecodeKey(b, &got) {
		t.Errorf("%s: not decoded by the fast path", b)
	}
}

func FuzzDecodeKey(f *testing.F) {
	for _, s := range keyJSONSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkDecodeKey)
}
