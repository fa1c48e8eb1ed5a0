package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseKey_Base64Of32BytesOnly(t *testing.T) {
	if _, err := ParseKey(NewKey() + "\n"); err != nil {
		t.Errorf("a fresh key with a newline: %v", err)
	}
	for _, bad := range []string{"", "c2hvcnQ=", "not base64 at all!", strings.Repeat("A", 64)} {
		if _, err := ParseKey(bad); err == nil || !strings.Contains(err.Error(), "32 bytes") {
			t.Errorf("ParseKey(%q) = %v, want an error naming the expected size", bad, err)
		}
	}
}

func TestSealOpen_RoundTrip_BoundToAssociatedData(t *testing.T) {
	k, _ := ParseKey(NewKey())
	kr, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := kr.Seal([]byte("hunter2"), []byte("ns\x00pw"))
	if err != nil || bytes.Contains(sealed, []byte("hunter2")) || len(sealed) != len("hunter2")+Overhead {
		t.Fatalf("Seal = %q, %v", sealed, err)
	}
	if plain, err := kr.Open(sealed, []byte("ns\x00pw")); err != nil || string(plain) != "hunter2" {
		t.Errorf("Open = %q, %v", plain, err)
	}
	if _, err := kr.Open(sealed, []byte("ns\x00other")); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open under another key name = %v, want ErrWrongKey", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := kr.Open(sealed, []byte("ns\x00pw")); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open of a tampered object = %v, want ErrWrongKey", err)
	}
	var none *Keyring
	if _, err := none.Seal([]byte("x"), nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("Seal without a keyring = %v, want ErrNoKey", err)
	}
}

// Racing first writers (goroutines here, processes alike: the file is
// linked into place) end up with one key file, mode 0600, and every
// keyring opens what the others sealed.
func TestFileKeyring_CreatedOnceWithMode0600(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data", "secret.key")
	rings := make([]*Keyring, 8)
	sealed := make([][]byte, len(rings))
	var wg sync.WaitGroup
	for i := range rings {
		rings[i], _ = FileKeyring(file)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var err error
			if sealed[i], err = rings[i].Seal([]byte{byte(i)}, nil); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	for i := range rings {
		for j := range sealed {
			if plain, err := rings[i].Open(sealed[j], nil); err != nil || !bytes.Equal(plain, []byte{byte(j)}) {
				t.Errorf("keyring %d opening %d: %v", i, j, err)
			}
		}
	}
	// Before any write there is no key, and a read says so.
	empty, _ := FileKeyring(filepath.Join(t.TempDir(), "secret.key"))
	if _, err := empty.Open(sealed[0], nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("Open before the key exists = %v, want ErrNoKey", err)
	}
}
