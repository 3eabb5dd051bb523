package bolt

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/credentials"
)

// sameEntries fails t unless got and want answer alike for every secret.
func sameEntries(t *testing.T, step string, got, want *credentials.Index, secrets []string) {
	t.Helper()
	if got.Revision != want.Revision || got.Len() != want.Len() || got.Counts != want.Counts {
		t.Fatalf("%s: revision %d, len %d, counts %+v; want %d, %d, %+v", step,
			got.Revision, got.Len(), got.Counts, want.Revision, want.Len(), want.Counts)
	}
	for _, secret := range secrets {
		g, w := lookup(got, secret), lookup(want, secret)
		if (g == nil) != (w == nil) {
			t.Fatalf("%s: %s: got %v, want %v", step, secret, g, w)
		}
		if g == nil {
			continue
		}
		ge, we := *g, *w
		gc, wc := *ge.Client, *we.Client
		ge.Usage, we.Usage, ge.Client, we.Client = nil, nil, nil, nil
		if !reflect.DeepEqual(ge, we) || !reflect.DeepEqual(gc, wc) {
			t.Fatalf("%s: %s:\n got %+v %+v\nwant %+v %+v", step, secret, ge, gc, we, wc)
		}
	}
}

// TestIncrementalIndex applies random changes and checks after each that
// the index Apply derived answers like an index built from the records,
// and at the end like the index of the reopened file, while readers look
// keys up (run it under -race).
func TestIncrementalIndex(t *testing.T) {
	path := dbPath(t)
	s := open(t, path, Options{})
	r := rand.New(rand.NewPCG(3, 4))
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	future := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	var secrets []string
	for i := range 400 {
		secrets = append(secrets, fmt.Sprintf("secret-%d", i))
	}
	base := &credentials.Changes{}
	for i := range 3 {
		base.Tenants = append(base.Tenants, tenant(fmt.Sprintf("t%d", i)))
	}
	for i := range 5 {
		base.Clients = append(base.Clients, client(fmt.Sprintf("cl_%d", i), fmt.Sprintf("t%d", i%3)))
	}
	for i := range 100 {
		base.APIKeys = append(base.APIKeys, apiKey(fmt.Sprintf("ak_%d", i), fmt.Sprintf("cl_%d", i%5), secrets[i]))
	}
	mustApply(t, s, base)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if e := lookup(s.Index(), secrets[i%len(secrets)]); e != nil {
				e.Usage.Record(time.Unix(int64(i/100), 0), netip.Addr{})
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	scopes := [][]string{nil, {"read:*"}, {"read:x", "write:*"}}
	applied := 0
	for step := range 300 {
		st := s.cur.Load()
		ch := &credentials.Changes{}
		all, err := s.APIKeys(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		keyIDs := make([]string, 0, len(all))
		byID := map[string]credentials.APIKey{}
		for _, k := range all {
			keyIDs = append(keyIDs, k.ID)
			k.LastUsedAt, k.LastUsedIP = nil, ""
			byID[k.ID] = k
		}
		clientIDs := make([]string, 0, len(st.clients))
		for id := range st.clients {
			clientIDs = append(clientIDs, id)
		}
		if len(clientIDs) == 0 {
			ch.Clients = append(ch.Clients, client(fmt.Sprintf("cl_%d", r.IntN(7)), "t0"))
			mustApply(t, s, ch)
			continue
		}
		pickKey := func() *credentials.APIKey { k := copyKey(new(byID[keyIDs[r.IntN(len(keyIDs))]])); return &k }
		pickClient := func() string { return clientIDs[r.IntN(len(clientIDs))] }
		op := r.IntN(14)
		if len(keyIDs) < 20 {
			op = 0
		}
		switch op {
		case 0, 1: // new keys
			for range 1 + r.IntN(8) {
				ch.APIKeys = append(ch.APIKeys, apiKey(fmt.Sprintf("ak_n%d_%d", step, len(ch.APIKeys)), pickClient(), secrets[r.IntN(len(secrets))]))
			}
		case 2: // rotate
			k := pickKey()
			k.KeySHA256 = digest(secrets[r.IntN(len(secrets))])
			ch.APIKeys = append(ch.APIKeys, *k)
		case 3: // move
			k := pickKey()
			k.ClientID = pickClient()
			ch.APIKeys = append(ch.APIKeys, *k)
		case 4: // disable, scope, expire
			k := pickKey()
			k.Disabled = r.IntN(2) == 0
			k.Scopes = scopes[r.IntN(3)]
			switch r.IntN(3) {
			case 0:
				k.ExpiresAt = &past
			case 1:
				k.ExpiresAt = &future
			default:
				k.ExpiresAt = nil
			}
			ch.APIKeys = append(ch.APIKeys, *k)
		case 5:
			ch.DeleteAPIKeys = []string{pickKey().ID}
		case 6, 7: // change a client
			c := copyClient(st.clients[pickClient()])
			c.Disabled = r.IntN(3) == 0
			c.Scopes = scopes[r.IntN(3)]
			c.Tenant = fmt.Sprintf("t%d", r.IntN(3))
			if r.IntN(3) == 0 {
				c.AllowedCIDRs = []string{"10.0.0.0/8"}
			}
			ch.Clients = append(ch.Clients, c)
		case 8:
			ch.DeleteClients = []string{pickClient()}
		case 9:
			ch.Clients = append(ch.Clients, client(fmt.Sprintf("cl_%d", 5+r.IntN(3)), fmt.Sprintf("t%d", r.IntN(3))))
		case 10: // disable or enable a tenant
			tn := tenant(fmt.Sprintf("t%d", r.IntN(3)))
			tn.Disabled = r.IntN(2) == 0
			ch.Tenants = append(ch.Tenants, tn)
		case 11:
			c := pickClient()
			ch.ReplaceKeysOf = []string{c}
			ch.APIKeys = append(ch.APIKeys, apiKey(fmt.Sprintf("ak_r%d", step), c, secrets[r.IntN(len(secrets))]))
		case 12: // a whole snapshot, one key changed
			snap, err := s.Export(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ch, err = snap.Changes(true); err != nil {
				t.Fatal(err)
			}
			if len(ch.APIKeys) > 0 {
				ch.APIKeys[0].Disabled = !ch.APIKeys[0].Disabled
			}
		case 13: // swap the digests of two keys
			a, b := pickKey(), pickKey()
			if a.ID != b.ID {
				a.KeySHA256, b.KeySHA256 = b.KeySHA256, a.KeySHA256
				ch.APIKeys = append(ch.APIKeys, *a, *b)
			}
		}
		if _, err := s.Apply(ctx, ch, credentials.ApplyOptions{Actor: "test"}); err != nil {
			if code := credentials.ErrorCode(err); code != credentials.EInvalid && code != credentials.EConflict {
				t.Fatalf("step %d: %v", step, err)
			}
			continue // a digest taken by another key, and the like
		}
		applied++
		st = s.cur.Load()
		d := st.indexData()
		if d.APIKeys, err = s.APIKeys(ctx, ""); err != nil {
			t.Fatal(err)
		}
		sameEntries(t, fmt.Sprintf("step %d", step), st.idx, credentials.BuildIndex(d, nil), secrets)
	}
	if applied < 200 {
		t.Fatalf("only %d of 300 changes applied", applied)
	}
	live := s.Index()
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path, Options{})
	sameEntries(t, "reopened", live, s2.Index(), secrets)
}
