package storagetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/seal"
)

// TestKeys returns a keyring with a fresh random key.
func TestKeys(tb testing.TB) *seal.Keyring {
	tb.Helper()
	k, err := seal.ParseKey(seal.NewKey())
	if err != nil {
		tb.Fatal(err)
	}
	kr, err := seal.New(k)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// RawObject reads an object's bytes straight from the bucket.
func RawObject(tb testing.TB, b storage.Bucket, name string) []byte {
	tb.Helper()
	rc, err := b.Get(context.Background(), name)
	if err != nil {
		tb.Fatalf("read object %s: %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func sensitiveSealedAtRestFlagKeptEverywhere(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{Keys: TestKeys(t), CacheSize: -1})
	marker := "SENSITIVE-MARKER-91d2-" + p.Name
	values := map[string]storage.Value{
		"pw":    storage.String(marker),
		"doc":   {Type: storage.JSON, V: map[string]any{"password": marker, "n": int64(7)}},
		"count": {Type: storage.NUMBER, V: int64(41)},
	}
	for key, v := range values {
		e := mustSet(t, p.Store, ns, key, v, storage.SetOptions{Sensitive: true, Description: "desc-" + key})
		raw := RawObject(t, p.Bucket, e.Object)
		if bytes.Contains(raw, []byte(marker)) || !bytes.HasPrefix(raw, []byte(seal.Magic)) || !e.Sensitive {
			t.Errorf("%s: object %q is not sealed (sensitive %v)", key, raw, e.Sensitive)
		}
		got, gv, err := p.Store.Get(ctx, ns, key)
		if err != nil || !reflect.DeepEqual(gv, v) || !got.Sensitive {
			t.Errorf("Get %s = %#v sensitive %v, %v; want %#v", key, gv, got != nil && got.Sensitive, err, v)
		}
	}
	// A stream and a batch are sealed too; Open streams the clear text.
	e, err := p.Store.SetStream(ctx, ns, "streamed", strings.NewReader(marker+"-stream"), storage.SetOptions{Sensitive: true})
	if err != nil || bytes.Contains(RawObject(t, p.Bucket, e.Object), []byte(marker)) {
		t.Fatalf("SetStream sensitive: %v", err)
	}
	if _, rc, err := p.Store.Open(ctx, ns, "streamed"); err != nil {
		t.Fatal(err)
	} else if text, _ := io.ReadAll(rc); string(text) != marker+"-stream" {
		t.Errorf("Open sensitive = %q", text)
	}
	es, err := p.Store.SetMany(ctx, ns, []storage.BatchEntry{
		{Key: "batch-secret", Value: storage.String(marker + "-batch"), Sensitive: true},
		{Key: "batch-plain", Value: storage.String("plain")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !es[0].Sensitive || es[1].Sensitive || bytes.Contains(RawObject(t, p.Bucket, es[0].Object), []byte(marker)) {
		t.Errorf("SetMany: flags %v %v, or the object is not sealed", es[0].Sensitive, es[1].Sensitive)
	}
	if _, v, err := p.Store.Get(ctx, ns, "batch-secret"); err != nil || v.V != marker+"-batch" {
		t.Errorf("Get batch-secret = %v, %v", v.V, err)
	}
	// Increment keeps the flag; every version has it; a restore keeps it.
	if _, e, err := p.Store.Increment(ctx, ns, "count", storage.Value{Type: storage.NUMBER, V: int64(1)}, storage.SetOptions{}); err != nil || !e.Sensitive {
		t.Fatalf("Increment of a sensitive counter: %+v, %v", e, err)
	}
	mustSet(t, p.Store, ns, "pw", storage.String(marker+"-v2"), storage.SetOptions{Sensitive: true})
	page, err := p.Store.History(ctx, ns, "pw", storage.HistoryOptions{})
	if err != nil || len(page.Versions) != 2 || !page.Versions[0].Sensitive || !page.Versions[1].Sensitive {
		t.Fatalf("History = %+v, %v", page.Versions, err)
	}
	if _, v, err := p.Store.GetVersion(ctx, ns, "pw", 1); err != nil || v.V != marker {
		t.Errorf("GetVersion 1 = %v, %v", v.V, err)
	}
	r, err := p.Store.Restore(ctx, ns, "pw", 1, storage.SetOptions{})
	if err != nil || !r.Sensitive || bytes.Contains(RawObject(t, p.Bucket, r.Object), []byte(marker)) {
		t.Fatalf("Restore of a sensitive version: %+v, %v", r, err)
	}
	// Reads under Secrets record what they revealed.
	sec := &storage.Secrets{}
	if _, _, err := p.Store.Get(storage.WithSecrets(ctx, sec), ns, "doc"); err != nil {
		t.Fatal(err)
	}
	if got := sec.MaskText("pw is " + marker + "!"); got != "pw is "+storage.Mask+"!" {
		t.Errorf("MaskText = %q", got)
	}
	if dump := DumpDB(t, p); strings.Contains(dump, marker) || !strings.Contains(dump, "desc-pw") {
		t.Errorf("the database holds the value, or the dump proves nothing:\n%s", dump)
	}
}

func sensitiveWrongOrMissingKeyClearError(t *testing.T, open Opener) {
	ctx := context.Background()
	p := open(t, storage.Options{Keys: TestKeys(t), CacheSize: -1})
	mustSet(t, p.Store, ns, "pw", storage.String("hunter2"), storage.SetOptions{Sensitive: true})
	wrong := storage.New(p.Index, p.Bucket, storage.Options{Keys: TestKeys(t), CacheSize: -1})
	_, _, err := wrong.Get(ctx, ns, "pw")
	if kvflow.ErrorCode(err) != kvflow.EINTERNAL || !strings.Contains(err.Error(), "sensitive key 'pw'") || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("Get with a wrong key = %v, want EINTERNAL naming the key and the missing key id", err)
	}
	none := storage.New(p.Index, p.Bucket, storage.Options{CacheSize: -1})
	_, _, err = none.Get(ctx, ns, "pw")
	if kvflow.ErrorCode(err) != kvflow.EINTERNAL || !strings.Contains(err.Error(), "KVFLOW_SECRET_KEY") {
		t.Errorf("Get without a key = %v, want EINTERNAL naming KVFLOW_SECRET_KEY", err)
	}
	// Without a key a sensitive write is refused and nothing is stored.
	_, err = none.Set(ctx, ns, "new", storage.String("x"), storage.SetOptions{Sensitive: true})
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || !strings.Contains(err.Error(), "KVFLOW_SECRET_KEY") {
		t.Errorf("sensitive Set without a key = %v, want EUNAVAILABLE naming KVFLOW_SECRET_KEY", err)
	}
	if _, err := none.SetMany(ctx, ns, []storage.BatchEntry{{Key: "new", Value: storage.String("x"), Sensitive: true}}); kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE {
		t.Errorf("sensitive SetMany without a key = %v", err)
	}
	if _, _, err := none.Get(ctx, ns, "new"); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Errorf("a refused write left an entry: %v", err)
	}
	// Rotation: a new current key with the old one kept for reads.
	oldKey, newKey := seal.NewKey(), seal.NewKey()
	ok1, _ := seal.ParseKey(oldKey)
	nk1, _ := seal.ParseKey(newKey)
	before, _ := seal.New(ok1)
	after, _ := seal.New(nk1, ok1)
	s1 := storage.New(p.Index, p.Bucket, storage.Options{Keys: before, CacheSize: -1})
	mustSet(t, s1, ns, "rotated", storage.String("v-old"), storage.SetOptions{Sensitive: true})
	s2 := storage.New(p.Index, p.Bucket, storage.Options{Keys: after, CacheSize: -1})
	if _, v, err := s2.Get(ctx, ns, "rotated"); err != nil || v.V != "v-old" {
		t.Errorf("read after rotation = %v, %v", v.V, err)
	}
	e := mustSet(t, s2, ns, "rotated", storage.String("v-new"), storage.SetOptions{Sensitive: true})
	raw := RawObject(t, p.Bucket, e.Object)
	if got := raw[len(seal.Magic) : len(seal.Magic)+8]; !bytes.Equal(got, mustHex(t, seal.KeyID(nk1))) {
		t.Errorf("a write after rotation used key %x, want the new one %s", got, seal.KeyID(nk1))
	}
}

func sensitiveExportImportRoundTrip(t *testing.T, open Opener) {
	ctx := context.Background()
	src := open(t, storage.Options{Keys: TestKeys(t)})
	mustSet(t, src.Store, ns, "pw", storage.String("s3cret-exported"), storage.SetOptions{Sensitive: true, Description: "the password"})
	mustSet(t, src.Store, ns, "plain", storage.String("public"), storage.SetOptions{})
	var buf bytes.Buffer
	if _, err := src.Store.Export(ctx, &buf, storage.ExportOptions{Namespaces: []string{ns}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"sensitive":true`) || strings.Count(buf.String(), `"sensitive"`) != 1 {
		t.Fatalf("export does not flag exactly the sensitive entry:\n%s", buf.String())
	}
	dst := open(t, storage.Options{Keys: TestKeys(t), CacheSize: -1})
	if res, err := dst.Store.Import(ctx, &buf, storage.ImportOptions{}); err != nil || res.Written != 2 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	e, v, err := dst.Store.Get(ctx, ns, "pw")
	if err != nil || v.V != "s3cret-exported" || !e.Sensitive || e.Description != "the password" {
		t.Fatalf("imported pw = %+v %v, %v", e, v.V, err)
	}
	if bytes.Contains(RawObject(t, dst.Bucket, e.Object), []byte("s3cret-exported")) {
		t.Error("the imported sensitive value is not sealed")
	}
	if e, _, _ := dst.Store.Get(ctx, ns, "plain"); e == nil || e.Sensitive {
		t.Errorf("imported plain = %+v", e)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
