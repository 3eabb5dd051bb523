package credentials

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/keygate/keygate/credentials/credentialstest"
)

var (
	digestA = strings.Repeat("a", 64)
	digestB = strings.Repeat("b", 64)
)

func validSnapshot() Snapshot {
	return Snapshot{
		Tenants: []Tenant{{Slug: "acme"}, {Slug: "globex"}},
		Clients: []SnapshotClient{
			{Client: Client{ID: "cl_one", Tenant: "acme", Scopes: []string{"read:*"}, AllowedCIDRs: []string{"10.0.0.0/8"}, RateLimit: "10/second"},
				APIKeys: &[]APIKey{{ID: "ak_one", KeySHA256: digestA}}},
			{Client: Client{ID: "cl_two", Tenant: "globex"},
				APIKeys: &[]APIKey{{ID: "ak_two", KeySHA256: digestB}}},
		},
	}
}

// errField runs f and returns the Field of its error, failing unless it
// is an invalid error.
func errField(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if c := ErrorCode(err); c != EInvalid {
		t.Fatalf("error %v has code %q, want invalid", err, c)
	}
	return ErrorField(err)
}

func TestSnapshotChanges(t *testing.T) {
	s := validSnapshot()
	c, err := s.Changes(true)
	if err != nil {
		t.Fatal(err)
	}
	want := &Changes{
		Replace: true,
		Tenants: s.Tenants,
		Clients: []Client{s.Clients[0].Client, s.Clients[1].Client},
		APIKeys: []APIKey{
			{ID: "ak_one", ClientID: "cl_one", KeySHA256: digestA},
			{ID: "ak_two", ClientID: "cl_two", KeySHA256: digestB},
		},
		ReplaceKeysOf: []string{"cl_one", "cl_two"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Changes (-want +got):\n%s", diff)
	}
	// Without apikeys, a client's keys are left alone.
	s.Clients[1].APIKeys = nil
	c, err = s.Changes(false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cl_one"}, c.ReplaceKeysOf); diff != "" {
		t.Errorf("ReplaceKeysOf (-want +got):\n%s", diff)
	}
	if (&Changes{}).Empty() != true || (&Changes{Replace: true}).Empty() || c.Empty() {
		t.Errorf("Empty() wrong")
	}
}

func TestSnapshotChangesInvalid(t *testing.T) {
	tests := []struct {
		name    string
		replace bool
		edit    func(s *Snapshot)
		field   string
	}{
		{"bad slug", false, func(s *Snapshot) { s.Tenants[1].Slug = "Globex" }, "tenants[1].slug"},
		{"slug too long", false, func(s *Snapshot) { s.Tenants[0].Slug = strings.Repeat("a", 64) }, "tenants[0].slug"},
		{"slug leading dash", false, func(s *Snapshot) { s.Tenants[0].Slug = "-acme" }, "tenants[0].slug"},
		{"duplicate tenant", false, func(s *Snapshot) { s.Tenants[1].Slug = "acme" }, "tenants[1].slug"},
		{"long display name", false, func(s *Snapshot) { s.Tenants[0].DisplayName = strings.Repeat("x", 201) }, "tenants[0].display_name"},
		{"client id prefix", false, func(s *Snapshot) { s.Clients[1].ID = "ak_two" }, "clients[1].id"},
		{"client id empty", false, func(s *Snapshot) { s.Clients[0].ID = "" }, "clients[0].id"},
		{"client id bare prefix", false, func(s *Snapshot) { s.Clients[0].ID = "cl_" }, "clients[0].id"},
		{"client id slash", false, func(s *Snapshot) { s.Clients[0].ID = "cl_a/b" }, "clients[0].id"},
		{"client id too long", false, func(s *Snapshot) { s.Clients[0].ID = "cl_" + strings.Repeat("a", 65) }, "clients[0].id"},
		{"duplicate client", false, func(s *Snapshot) { s.Clients[1].ID = "cl_one" }, "clients[1].id"},
		{"client tenant", false, func(s *Snapshot) { s.Clients[0].Tenant = "" }, "clients[0].tenant"},
		{"tenant not in snapshot", true, func(s *Snapshot) { s.Clients[1].Tenant = "initech" }, "clients[1].tenant"},
		{"long name", false, func(s *Snapshot) { s.Clients[0].Name = strings.Repeat("x", 201) }, "clients[0].name"},
		{"long description", false, func(s *Snapshot) { s.Clients[0].Description = strings.Repeat("x", 2001) }, "clients[0].description"},
		{"bad role", false, func(s *Snapshot) { s.Clients[0].Roles = []string{"ok", "not ok"} }, "clients[0].roles[1]"},
		{"bad scope", false, func(s *Snapshot) { s.Clients[1].Scopes = []string{"a,b"} }, "clients[1].scopes[0]"},
		{"empty scope", false, func(s *Snapshot) { s.Clients[1].Scopes = []string{""} }, "clients[1].scopes[0]"},
		{"bad cidr", false, func(s *Snapshot) { s.Clients[0].AllowedCIDRs = []string{"10.0.0.0/8", "10.0.0.0/33"} }, "clients[0].allowed_cidrs[1]"},
		{"bad address", false, func(s *Snapshot) { s.Clients[0].AllowedCIDRs = []string{"example.com"} }, "clients[0].allowed_cidrs[0]"},
		{"bad rate limit", false, func(s *Snapshot) { s.Clients[0].RateLimit = "10/fortnight" }, "clients[0].rate_limit"},
		{"negative token version", false, func(s *Snapshot) { s.Clients[0].TokenVersion = -1 }, "clients[0].token_version"},
		{"key id", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].ID = "cl_x" }, "clients[1].apikeys[0].id"},
		{"key digest short", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].KeySHA256 = "abc" }, "clients[1].apikeys[0].key_sha256"},
		{"key digest not hex", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].KeySHA256 = strings.Repeat("g", 64) }, "clients[1].apikeys[0].key_sha256"},
		{"key digest missing", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].KeySHA256 = "" }, "clients[1].apikeys[0].key_sha256"},
		{"key and digest", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].Key = GenerateAPIKey() }, "clients[1].apikeys[0].key"},
		{"malformed plaintext", false, func(s *Snapshot) {
			(*s.Clients[1].APIKeys)[0] = APIKey{ID: "ak_two", Key: "short"}
		}, "clients[1].apikeys[0].key"},
		{"bad checksum plaintext", false, func(s *Snapshot) {
			k := GenerateAPIKey()
			last := "0"
			if k[GeneratedLen-1] == '0' {
				last = "1" // any other character breaks the checksum
			}
			(*s.Clients[1].APIKeys)[0] = APIKey{ID: "ak_two", Key: k[:GeneratedLen-1] + last}
		}, "clients[1].apikeys[0].key"},
		{"key of other client", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].ClientID = "cl_one" }, "clients[1].apikeys[0].client_id"},
		{"duplicate key id", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].ID = "ak_one" }, "clients[1].apikeys[0].id"},
		{"duplicate digest", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].KeySHA256 = digestA }, "clients[1].apikeys[0].key_sha256"},
		{"duplicate digest other case", false, func(s *Snapshot) { (*s.Clients[1].APIKeys)[0].KeySHA256 = strings.ToUpper(digestA) }, "clients[1].apikeys[0].key_sha256"},
		{"duplicate digest by plaintext", false, func(s *Snapshot) {
			k := GenerateAPIKey()
			(*s.Clients[0].APIKeys)[0] = APIKey{ID: "ak_one", Key: k}
			(*s.Clients[1].APIKeys)[0] = APIKey{ID: "ak_two", KeySHA256: credentialstest.SHA256Hex(k)}
		}, "clients[1].apikeys[0].key_sha256"},
		{"key bad scope", false, func(s *Snapshot) { (*s.Clients[0].APIKeys)[0].Scopes = []string{"read", "x y"} }, "clients[0].apikeys[0].scopes[1]"},
		{"key long name", false, func(s *Snapshot) { (*s.Clients[0].APIKeys)[0].Name = strings.Repeat("n", 201) }, "clients[0].apikeys[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSnapshot()
			tt.edit(&s)
			c, err := s.Changes(tt.replace)
			if got := errField(t, err); got != tt.field {
				t.Errorf("Changes() error %v names field %q, want %q", err, got, tt.field)
			}
			if c != nil {
				t.Errorf("Changes() returned changes with an error")
			}
		})
	}
}

func TestSnapshotImportPlaintext(t *testing.T) {
	gen, django := GenerateAPIKey(), credentialstest.DjangoKey()
	s := Snapshot{
		Tenants: []Tenant{{Slug: "acme"}},
		Clients: []SnapshotClient{{Client: Client{ID: "cl_a", Tenant: "acme"}, APIKeys: &[]APIKey{
			{ID: "ak_gen", Key: gen},
			{ID: "ak_django", Key: django},
			{ID: "ak_upper", KeySHA256: strings.ToUpper(credentialstest.SHA256Hex("imported-elsewhere-0001"))},
			{ID: "ak_used", KeySHA256: digestA, LastUsedIP: "10.0.0.1"},
		}}},
	}
	c, err := s.Changes(true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{credentialstest.SHA256Hex(gen), credentialstest.SHA256Hex(django), credentialstest.SHA256Hex("imported-elsewhere-0001"), digestA}
	for i, k := range c.APIKeys {
		if k.Key != "" || k.KeySHA256 != want[i] {
			t.Errorf("APIKeys[%d] = key %q, digest %s; want no key, digest %s", i, k.Key, k.KeySHA256, want[i])
		}
		if k.LastUsedIP != "" || k.LastUsedAt != nil {
			t.Errorf("APIKeys[%d]: last use not cleared", i)
		}
		// The document itself is left as it was (admin scrubs errors
		// with the plaintext keys it still holds).
		if d := (*s.Clients[0].APIKeys)[i]; i < 2 && (d.Key == "" || d.KeySHA256 != "") {
			t.Errorf("snapshot key %d modified: %q / %s", i, d.Key, d.KeySHA256)
		}
		if sum := k.Sum(); hex.EncodeToString(sum[:]) != want[i] {
			t.Errorf("APIKeys[%d].Sum() = %x", i, sum)
		}
	}
	// Normalizing twice is harmless (idempotent input).
	if _, err := s.Changes(true); err != nil {
		t.Errorf("second Changes() = %v", err)
	}
}

func TestChangeBatchChanges(t *testing.T) {
	b := ChangeBatch{
		Upsert: Snapshot{Clients: []SnapshotClient{{Client: Client{ID: "cl_new", Tenant: "not-in-batch"}}}},
		Delete: Deletes{Tenants: []string{"old"}, Clients: []string{"cl_old"}, APIKeys: []string{"ak_old"}},
	}
	c, err := b.Changes()
	if err != nil {
		t.Fatal(err) // a batch may name a tenant it does not upsert
	}
	want := &Changes{
		Clients:       []Client{{ID: "cl_new", Tenant: "not-in-batch"}},
		DeleteTenants: []string{"old"}, DeleteClients: []string{"cl_old"}, DeleteAPIKeys: []string{"ak_old"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Changes (-want +got):\n%s", diff)
	}

	tests := []struct {
		name  string
		b     ChangeBatch
		field string
	}{
		{"upsert tenant", ChangeBatch{Upsert: Snapshot{Tenants: []Tenant{{Slug: "ok"}, {Slug: "NO"}}}}, "upsert.tenants[1].slug"},
		{"upsert key", ChangeBatch{Upsert: Snapshot{Clients: []SnapshotClient{{Client: Client{ID: "cl_a", Tenant: "t"}, APIKeys: &[]APIKey{{ID: "ak_a"}}}}}}, "upsert.clients[0].apikeys[0].key_sha256"},
		{"delete tenant", ChangeBatch{Delete: Deletes{Tenants: []string{"ok", "../etc"}}}, "delete.tenants[1]"},
		{"delete client", ChangeBatch{Delete: Deletes{Clients: []string{"ak_x"}}}, "delete.clients[0]"},
		{"delete key", ChangeBatch{Delete: Deletes{APIKeys: []string{"ak_ok", "ak_"}}}, "delete.apikeys[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.b.Changes()
			if got := errField(t, err); got != tt.field {
				t.Errorf("error %v names %q, want %q", err, got, tt.field)
			}
		})
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		field string // "" with wantErr: an error without a field
		err   bool
	}{
		{name: "ok", in: `{"tenants":[{"slug":"a"}],"clients":[{"id":"cl_a","tenant":"a","apikeys":[]}]}`},
		{name: "trailing space", in: "{}\n\t "},
		{name: "unknown top-level", in: `{"tenant":[]}`, field: "tenant", err: true},
		{name: "unknown nested", in: `{"clients":[{"id":"cl_a","tenant":"t","apikeys":[{"id":"ak_1","bogus":5}]}]}`, field: "bogus", err: true},
		{name: "server field", in: `{"clients":[{"id":"cl_a","tenant":"t","apikeys":[{"id":"ak_1","key_hash":"x"}]}]}`, field: "key_hash", err: true},
		{name: "wrong type nested", in: `{"clients":[{"id":"cl_a","tenant":"t","apikeys":[{"id":"ak_1","key_sha256":5}]}]}`, field: "clients.apikeys.key_sha256", err: true},
		{name: "wrong type bool", in: `{"tenants":[{"slug":"x","disabled":"yes"}]}`, field: "tenants.disabled", err: true},
		{name: "wrong type list", in: `{"clients":{}}`, field: "clients", err: true},
		{name: "bad time", in: `{"clients":[{"id":"cl_a","tenant":"t","apikeys":[{"id":"ak_1","expires_at":"tomorrow"}]}]}`, err: true},
		{name: "trailing document", in: `{} {}`, err: true},
		{name: "trailing garbage", in: `{} x`, err: true},
		{name: "trailing brace", in: `{} }`, err: true},
		{name: "trailing bracket", in: `{} ]`, err: true},
		{name: "truncated", in: `{"tenants":[`, err: true},
		{name: "empty", in: ``, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Snapshot
			err := DecodeStrict([]byte(tt.in), &s)
			if !tt.err {
				if err != nil {
					t.Fatalf("DecodeStrict() = %v", err)
				}
				return
			}
			if got := errField(t, err); got != tt.field {
				t.Errorf("DecodeStrict() = %v, field %q, want %q", err, got, tt.field)
			}
		})
	}
}

func TestParseCIDR(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.0.1.5", "10.0.1.5/32"},
		{"10.0.1.5/24", "10.0.1.0/24"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::1/32", "2001:db8::/32"},
		{"::ffff:10.0.1.5", "10.0.1.5/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"::/0", "::/0"},
	}
	for _, tt := range tests {
		got, err := ParseCIDR(tt.in)
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseCIDR(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0", "10.0.0.0/", "/8", "example.com", "10.0.0.0/8/8", "10.0.0.0 /8"} {
		if _, err := ParseCIDR(bad); err == nil {
			t.Errorf("ParseCIDR(%q) accepted", bad)
		}
	}
}

func TestErrors(t *testing.T) {
	err := FieldError("clients[0].id", "bad %s", "id")
	if ErrorCode(err) != EInvalid || ErrorMessage(err) != "bad id" || ErrorField(err) != "clients[0].id" {
		t.Errorf("FieldError: %v", err)
	}
	in := Internal(errSecret)
	if ErrorCode(in) != EInternal || ErrorMessage(in) != "internal error" || strings.Contains(ErrorMessage(in), "s3cret") {
		t.Errorf("Internal leaks: %q", ErrorMessage(in))
	}
	if ErrorCode(nil) != "" || ErrorCode(errSecret) != EInternal || ErrorMessage(errSecret) != "internal error" || ErrorField(errSecret) != "" {
		t.Errorf("plain errors mapped wrong")
	}
}

var errSecret = &plainError{"s3cret"}

type plainError struct{ s string }

func (e *plainError) Error() string { return e.s }
