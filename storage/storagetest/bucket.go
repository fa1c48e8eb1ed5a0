// Package storagetest holds conformance suites that every storage backend must pass.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mathrand "math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kvflow/kvflow/storage"
)

// BucketAcceptance checks that b keeps the storage.Bucket contract. It works
// under a random prefix and deletes what it wrote, so b may be shared.
func BucketAcceptance(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	base := "acceptance-" + randomHex(t, 6) + "/"
	t.Cleanup(func() {
		var names []string
		_ = b.Iter(ctx, base, func(name string, _ time.Time) error {
			names = append(names, name)
			return nil
		})
		for _, name := range names {
			_ = b.Delete(ctx, name)
		}
	})

	t.Run("Ping_OK", func(t *testing.T) {
		if err := b.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("PutGet_ReturnsSameBytes", func(t *testing.T) {
		name := base + "putget/ns/_kv/key.ion"
		want := []byte(`{value:"hello",n:42}`)
		mustPut(t, b, name, want, int64(len(want)))
		if got := mustGet(t, b, name); !bytes.Equal(got, want) {
			t.Fatalf("Get(%q) = %q, want %q", name, got, want)
		}
	})

	t.Run("Get_PackMember_ReadsItsRange", func(t *testing.T) {
		pack := base + "packs/ns/_kv/p1.pack"
		mustPut(t, b, pack, []byte("headerONETWO!"), 13)
		for name, want := range map[string]string{pack + "#6+3": "ONE", pack + "#9+3": "TWO", pack + "#0+13": "headerONETWO!"} {
			if got := mustGet(t, b, name); string(got) != want {
				t.Errorf("Get(%q) = %q, want %q", name, got, want)
			}
		}
		if _, err := b.Get(ctx, base+"packs/ns/_kv/gone.pack#0+3"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get of a member of a missing pack: %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("Put_Overwrite_GetReturnsLatest", func(t *testing.T) {
		name := base + "overwrite/obj"
		mustPut(t, b, name, []byte("first value, longer than the second"), -1)
		mustPut(t, b, name, []byte("second"), 6)
		if got, want := string(mustGet(t, b, name)), "second"; got != want {
			t.Fatalf("Get after overwrite = %q, want %q", got, want)
		}
	})

	t.Run("Get_Missing_ErrNotExist", func(t *testing.T) {
		rc, err := b.Get(ctx, base+"missing/nothing-here.ion")
		if err == nil {
			rc.Close()
			t.Fatal("Get of a missing object succeeded")
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Get of a missing object: error %v does not match fs.ErrNotExist", err)
		}
		if err.Error() == "" {
			t.Fatal("Get of a missing object: empty error message")
		}
	})

	t.Run("Delete_ThenGet_ErrNotExist", func(t *testing.T) {
		name := base + "delete/a/b/obj"
		mustPut(t, b, name, []byte("x"), 1)
		if err := b.Delete(ctx, name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if rc, err := b.Get(ctx, name); err == nil {
			rc.Close()
			t.Fatal("Get after Delete succeeded")
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Get after Delete: error %v does not match fs.ErrNotExist", err)
		}
		if got := list(t, b, base+"delete/"); len(got) != 0 {
			t.Fatalf("Iter after Delete = %v, want nothing", got)
		}
	})

	t.Run("Delete_Missing_NoError", func(t *testing.T) {
		if err := b.Delete(ctx, base+"delete-missing/never-written"); err != nil {
			t.Fatalf("Delete of a missing object: %v", err)
		}
	})

	t.Run("Iter_Prefix_ListsOnlyMatches", func(t *testing.T) {
		p := base + "iter/"
		start := time.Now()
		for _, n := range []string{"a/1", "a/2", "ab/3", "b/4", "a/sub/5"} {
			mustPut(t, b, p+n, []byte(n), int64(len(n)))
		}
		end := time.Now()
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"a/", []string{"a/1", "a/2", "a/sub/5"}},
			{"a", []string{"a/1", "a/2", "a/sub/5", "ab/3"}},
			{"b/", []string{"b/4"}},
			{"", []string{"a/1", "a/2", "a/sub/5", "ab/3", "b/4"}},
			{"c/", nil},
			{"a/sub/5", []string{"a/sub/5"}},
		} {
			var got []string
			err := b.Iter(ctx, p+tc.prefix, func(name string, modified time.Time) error {
				// Stores keep at least second precision.
				if modified.Before(start.Add(-2*time.Second)) || modified.After(end.Add(2*time.Second)) {
					t.Errorf("Iter(%q): %s modified %v, want between %v and %v", tc.prefix, name, modified, start, end)
				}
				got = append(got, name[len(p):])
				return nil
			})
			if err != nil {
				t.Fatalf("Iter(%q): %v", tc.prefix, err)
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Iter(%q) = %v, want %v", tc.prefix, got, tc.want)
			}
		}
	})

	t.Run("Iter_CallbackError_StopsAndReturnsIt", func(t *testing.T) {
		p := base + "iter-stop/"
		for i := range 5 {
			mustPut(t, b, fmt.Sprintf("%s%d", p, i), []byte("v"), 1)
		}
		stop := errors.New("stop here")
		calls := 0
		err := b.Iter(ctx, p, func(string, time.Time) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) {
			t.Fatalf("Iter returned %v, want the callback's error", err)
		}
		if calls != 1 {
			t.Fatalf("callback ran %d times after returning an error, want 1", calls)
		}
	})

	t.Run("Put_UnknownSize_StreamsMiB", func(t *testing.T) {
		const n = 6<<20 + 12345
		name := base + "stream/unknown-size.ion"
		// A reader that is neither a Seeker nor a ReaderAt, like a request body.
		src := io.LimitReader(newPattern(1), n)
		if err := b.Put(ctx, name, struct{ io.Reader }{src}, -1); err != nil {
			t.Fatalf("Put with unknown size: %v", err)
		}
		checkPattern(t, b, name, 1, n)
	})

	t.Run("Put_KnownSize_StreamsMiB", func(t *testing.T) {
		const n = 6<<20 + 1
		name := base + "stream/known-size.ion"
		if err := b.Put(ctx, name, struct{ io.Reader }{io.LimitReader(newPattern(2), n)}, n); err != nil {
			t.Fatalf("Put with known size: %v", err)
		}
		checkPattern(t, b, name, 2, n)
	})

	t.Run("Put_Empty_GetReturnsNothing", func(t *testing.T) {
		for _, size := range []int64{0, -1} {
			name := fmt.Sprintf("%sempty/size%d", base, size)
			mustPut(t, b, name, nil, size)
			if got := mustGet(t, b, name); len(got) != 0 {
				t.Fatalf("Get of empty object (put with size %d) = %d bytes, want 0", size, len(got))
			}
			if got := list(t, b, name); len(got) != 1 {
				t.Fatalf("Iter(%q) = %v, want the empty object", name, got)
			}
		}
	})

	t.Run("Names_WithDots_RoundTrip", func(t *testing.T) {
		names := []string{
			base + "dots/company.team/_kv/my.key.ion",
			base + "dots/company.team/_kv/my.key.ion.v2",
			base + "dots/.hidden",
			base + "dots/a..b",
			base + "dots/trailing.",
		}
		for _, name := range names {
			mustPut(t, b, name, []byte(name), int64(len(name)))
		}
		for _, name := range names {
			if got := string(mustGet(t, b, name)); got != name {
				t.Fatalf("Get(%q) = %q", name, got)
			}
		}
		if got := list(t, b, base+"dots/"); len(got) != len(names) {
			t.Fatalf("Iter(dots/) = %v, want %d names", got, len(names))
		}
	})

	t.Run("Put_Concurrent_AllReadable", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
				errs <- b.Put(ctx, fmt.Sprintf("%sconcurrent/%d", base, i), bytes.NewReader(v), int64(len(v)))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Put: %v", err)
			}
		}
		for i := range 8 {
			got := mustGet(t, b, fmt.Sprintf("%sconcurrent/%d", base, i))
			if want := bytes.Repeat([]byte{byte('a' + i)}, 1000+i); !bytes.Equal(got, want) {
				t.Fatalf("object %d: got %d bytes, want %d of %c", i, len(got), len(want), 'a'+i)
			}
		}
	})
}

func mustPut(t *testing.T, b storage.Bucket, name string, v []byte, size int64) {
	t.Helper()
	if err := b.Put(context.Background(), name, bytes.NewReader(v), size); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func mustGet(t *testing.T, b storage.Bucket, name string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	v, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	return v
}

func list(t *testing.T, b storage.Bucket, prefix string) []string {
	t.Helper()
	var names []string
	if err := b.Iter(context.Background(), prefix, func(name string, _ time.Time) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatalf("Iter(%q): %v", prefix, err)
	}
	sort.Strings(names)
	return names
}

// checkPattern reads name back and compares it with n bytes of pattern seed.
func checkPattern(t *testing.T, b storage.Bucket, name string, seed byte, n int64) {
	t.Helper()
	want := sha256.New()
	if _, err := io.Copy(want, io.LimitReader(newPattern(seed), n)); err != nil {
		t.Fatal(err)
	}
	rc, err := b.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	got := sha256.New()
	m, err := io.Copy(got, rc)
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	if m != n {
		t.Fatalf("Get(%q) returned %d bytes, want %d", name, m, n)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("Get(%q) returned different bytes than were put", name)
	}
}

// newPattern returns an endless deterministic byte stream.
func newPattern(seed byte) io.Reader {
	return mathrand.NewChaCha8([32]byte{seed})
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
