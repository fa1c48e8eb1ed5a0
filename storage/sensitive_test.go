package storage_test

import (
	"errors"
	"testing"

	"github.com/kvflow/kvflow/internal/testpair"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/seal"
	"github.com/kvflow/kvflow/storage/storagetest"
)

// MaskAny masks map keys too: outputs.<task> of a ForEach is keyed by its
// values. The input is left as it was.
func TestSecrets_MaskAny_MasksKeysAndValues(t *testing.T) {
	var sec storage.Secrets
	sec.Add("s3cret-a")
	in := map[string]any{"s3cret-a": map[string]any{"value": "item s3cret-a"}, "plain": []any{"s3cret-a", 1}}
	out := sec.MaskAny(in).(map[string]any)
	if _, ok := out[storage.Mask]; !ok || len(out) != 2 {
		t.Fatalf("masked = %v, want the key masked", out)
	}
	if got := out[storage.Mask].(map[string]any)["value"]; got != "item "+storage.Mask {
		t.Errorf("value = %v", got)
	}
	if got := out["plain"].([]any)[0]; got != storage.Mask {
		t.Errorf("list leaf = %v", got)
	}
	if _, ok := in["s3cret-a"]; !ok {
		t.Errorf("the input was changed: %v", in)
	}
	if got := sec.Texts(); len(got) != 1 || got[0] != "s3cret-a" {
		t.Errorf("Texts = %q", got)
	}
}

// SealBytes and OpenBytes round-trip under the same associated data only;
// a store without a key refuses to seal.
func TestStore_SealBytes_RoundTripBoundToAD(t *testing.T) {
	s := testpair.Local(t, storage.Options{Keys: storagetest.TestKeys(t)}).Store
	sealed, err := s.SealBytes([]byte("hello"), "execution 1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.OpenBytes(sealed, "execution 1"); err != nil || string(got) != "hello" {
		t.Errorf("OpenBytes = %q, %v", got, err)
	}
	if _, err := s.OpenBytes(sealed, "execution 2"); err == nil {
		t.Error("OpenBytes under another AD succeeded")
	}
	plain := testpair.LocalStore(t)
	if _, err := plain.SealBytes([]byte("x"), "a"); !errors.Is(err, seal.ErrNoKey) {
		t.Errorf("SealBytes without a key: %v, want ErrNoKey", err)
	}
}
