package api

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/client"
	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
)

// The client covers the KV API and turns answers back into kvflow errors.
func TestClient_KVRoundTrip(t *testing.T) {
	onLocal(t, func(t *testing.T, pair testpair.Pair, c *clock) {
		ts := startServer(t, pair, Config{Namespaces: []string{"company.*"}})
		cl := ts.Client
		ctx := context.Background()
		ns := "company.team"

		// Set: inferred, typed, JSON, with options.
		if err := cl.Set(ctx, ns, "n", "42", client.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := cl.Set(ctx, ns, "s", "42", client.SetOptions{Type: storage.STRING, TTL: "PT1H", Description: "été, ünïcode\nnewline"}); err != nil {
			t.Fatal(err)
		}
		if err := cl.Set(ctx, ns, "j", `{"a":[1,2]}`, client.SetOptions{ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
		when := time.Date(2024, 7, 15, 6, 10, 33, 0, time.UTC)
		for key, v := range map[string]storage.Value{
			"dt": {Type: storage.DATETIME, V: when},
			"d":  {Type: storage.DATE, V: storage.Date{Time: when.Truncate(24 * time.Hour)}},
			"du": {Type: storage.DURATION, V: storage.Duration{Text: "PT5M", D: 5 * time.Minute}},
			"b":  {Type: storage.BOOLEAN, V: false},
			"f":  {Type: storage.NUMBER, V: 1.5},
			"p":  storage.String("P1D"),
		} {
			if err := cl.SetValue(ctx, ns, key, v, client.SetOptions{}); err != nil {
				t.Fatalf("SetValue %s: %v", key, err)
			}
			got, err := cl.GetValue(ctx, ns, key)
			if err != nil || got.Type != v.Type || got.Text() != v.Text() {
				t.Fatalf("GetValue %s = %+v, %v; want %+v", key, got, err, v)
			}
		}

		typ, raw, err := cl.Get(ctx, ns, "n")
		if err != nil || typ != storage.NUMBER || string(raw) != "42" {
			t.Fatalf("Get n = %s %s %v", typ, raw, err)
		}
		typ, raw, err = cl.Get(ctx, ns, "s")
		if err != nil || typ != storage.STRING || string(raw) != `"42"` {
			t.Fatalf("Get s = %s %s %v", typ, raw, err)
		}
		d, err := cl.Detail(ctx, ns, "s")
		if err != nil || d.Description != "été, ünïcode\nnewline" || d.Version != 1 || d.ExpirationDate.IsZero() || d.Namespace != ns {
			t.Fatalf("Detail s = %+v, %v", d, err)
		}
		if got := d.ExpirationDate.Sub(d.UpdateDate.Time); got != time.Hour {
			t.Fatalf("Detail s: expiration - update = %s, want 1h", got)
		}
		if v, ok := d.Value.(json.RawMessage); !ok || string(v) != `"42"` {
			t.Fatalf("Detail s value = %#v", d.Value)
		}

		// Errors.
		for _, tc := range []struct {
			name string
			err  error
			code string
		}{
			{"Missing", second(cl.Get(ctx, ns, "missing")), kvflow.ENOTFOUND},
			{"BadKey", second(cl.Get(ctx, ns, "bad key")), kvflow.EINVALID},
			{"Forbidden", second(cl.Get(ctx, "other", "k")), kvflow.EFORBIDDEN},
			{"Conflict", cl.Set(ctx, ns, "n", "1", client.SetOptions{NoOverwrite: true}), kvflow.ECONFLICT},
			{"BadTTL", cl.Set(ctx, ns, "x", "1", client.SetOptions{TTL: "soon"}), kvflow.EINVALID},
			{"BadType", cl.Set(ctx, ns, "x", "abc", client.SetOptions{Type: storage.NUMBER}), kvflow.EINVALID},
		} {
			if got := kvflow.ErrorCode(tc.err); got != tc.code {
				t.Errorf("%s: error %v has code %q, want %q", tc.name, tc.err, got, tc.code)
			} else if tc.err.Error() == "" || strings.HasPrefix(tc.err.Error(), "The server answered") {
				t.Errorf("%s: error %q does not carry the server's message", tc.name, tc.err)
			}
		}
		c.Advance(2 * time.Hour)
		if _, _, err := cl.Get(ctx, ns, "s"); kvflow.ErrorCode(err) != kvflow.EEXPIRED {
			t.Fatalf("Get of an expired key = %v, want EEXPIRED", err)
		}

		// List, keys, pages.
		keys, err := cl.Keys(ctx, ns, "")
		if err != nil || strings.Join(keys, ",") != "b,d,dt,du,f,j,n,p" {
			t.Fatalf("Keys = %v, %v", keys, err)
		}
		keys, err = cl.Keys(ctx, ns, "d")
		if err != nil || strings.Join(keys, ",") != "d,dt,du" {
			t.Fatalf("Keys with prefix d = %v, %v", keys, err)
		}
		var all []string
		cursor := ""
		for pages := 0; ; pages++ {
			entries, next, err := cl.List(ctx, ns, client.ListOptions{Limit: 3, Cursor: cursor})
			if err != nil || pages > 5 {
				t.Fatalf("List page %d: %v", pages, err)
			}
			for _, e := range entries {
				all = append(all, e.Key)
			}
			if cursor = next; cursor == "" {
				break
			}
		}
		if strings.Join(all, ",") != "b,d,dt,du,f,j,n,p" {
			t.Fatalf("paged List = %v", all)
		}

		// Delete and bulk delete.
		if ok, err := cl.Delete(ctx, ns, "n"); !ok || err != nil {
			t.Fatalf("Delete n = %v, %v", ok, err)
		}
		if ok, err := cl.Delete(ctx, ns, "n"); ok || err != nil {
			t.Fatalf("Delete n again = %v, %v", ok, err)
		}
		gone, err := cl.BulkDelete(ctx, ns, []string{"b", "d", "nothing"})
		if err != nil || strings.Join(gone, ",") != "b,d" {
			t.Fatalf("BulkDelete = %v, %v", gone, err)
		}

		// Namespaces.
		if _, err := cl.CreateNamespace(ctx, "company.new"); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.CreateNamespace(ctx, "company.new"); kvflow.ErrorCode(err) != kvflow.ECONFLICT {
			t.Fatalf("CreateNamespace twice = %v, want ECONFLICT", err)
		}
		nss, err := cl.Namespaces(ctx)
		// company is listed too, as the implicit parent of both.
		if err != nil || len(nss) != 3 || !nss[0].Implicit || nss[1].ID != "company.new" || nss[2].ID != ns || nss[2].Keys != 5 {
			t.Fatalf("Namespaces = %+v, %v", nss, err)
		}
		if err := cl.Ready(ctx); err != nil {
			t.Fatalf("Ready = %v", err)
		}
	})
}

func second[T, U any](_ T, _ U, err error) error { return err }

// A server that is not there is EUNAVAILABLE, naming the address.
func TestClient_Unreachable_Unavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, _, err = client.NewClient("http://"+addr, "").Get(context.Background(), "ns", "k")
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Get from a closed port = %v, want EUNAVAILABLE naming %s", err, addr)
	}
}
