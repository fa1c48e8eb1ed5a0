package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
	"github.com/kvflow/kvflow/storage/fs"
	"github.com/kvflow/kvflow/storage/storagetest"
)

func TestBucket_Acceptance(t *testing.T) {
	storagetest.BucketAcceptance(t, mustNew(t, t.TempDir()))
}

func TestBucket_Acceptance_CreatesMissingRoot(t *testing.T) {
	storagetest.BucketAcceptance(t, mustNew(t, filepath.Join(t.TempDir(), "not", "yet")))
}

func TestPut_NameOutsideRoot_Invalid(t *testing.T) {
	b := mustNew(t, t.TempDir())
	for _, name := range []string{
		"", "../escape", "a/../../escape", "/etc/passwd", `a\b`, "a//b", "a/./b", "a/", "..", "a\x00b",
		"a/.kvflow-tmp-123",
	} {
		err := b.Put(context.Background(), name, strings.NewReader("x"), 1)
		if got := kvflow.ErrorCode(err); got != kvflow.EINVALID {
			t.Errorf("Put(%q) error code = %q (%v), want %q", name, got, err, kvflow.EINVALID)
		}
		if _, err := b.Get(context.Background(), name); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("Get(%q) error = %v, want EINVALID", name, err)
		}
		if err := b.Delete(context.Background(), name); kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("Delete(%q) error = %v, want EINVALID", name, err)
		}
	}
	for _, prefix := range []string{"../", "/abs", `a\`, "a/../"} {
		err := b.Iter(context.Background(), prefix, func(string, time.Time) error { return nil })
		if kvflow.ErrorCode(err) != kvflow.EINVALID {
			t.Errorf("Iter(%q) error = %v, want EINVALID", prefix, err)
		}
	}
}

func TestPut_WrongSize_InvalidAndNothingStored(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	err := b.Put(context.Background(), "k/v", strings.NewReader("four"), 10)
	if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), "10") {
		t.Fatalf("Put with a wrong size: %v, want EINVALID naming the size", err)
	}
	if files := allFiles(t, dir); len(files) != 0 {
		t.Fatalf("files left after a failed Put: %v", files)
	}
}

func TestPut_ReaderFails_NoObjectNoTempFile(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	boom := errors.New("client went away")
	r := io.MultiReader(strings.NewReader("partial"), errReader{boom})
	if err := b.Put(context.Background(), "ns/_kv/k.ion", r, -1); !errors.Is(err, boom) {
		t.Fatalf("Put with a failing reader = %v, want the reader's error", err)
	}
	if _, err := b.Get(context.Background(), "ns/_kv/k.ion"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Get after failed Put = %v, want not exist", err)
	}
	if files := allFiles(t, dir); len(files) != 0 {
		t.Fatalf("files left after a failed Put: %v", files)
	}
}

func TestPut_OverwriteWhileReading_ReaderKeepsOldBytes(t *testing.T) {
	for _, size := range []int{1 << 20, 10} { // a large object's *os.File, a small one's reader
		b := mustNew(t, t.TempDir())
		ctx := context.Background()
		old := bytes.Repeat([]byte("o"), size)
		if err := b.Put(ctx, "k", bytes.NewReader(old), int64(len(old))); err != nil {
			t.Fatal(err)
		}
		rc, err := b.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if err := b.Put(ctx, "k", strings.NewReader("new"), 3); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, old) {
			t.Fatalf("open reader saw %d bytes of a mix, want the old %d bytes", len(got), len(old))
		}
	}
}

// Objects up to 64 KiB are read with plain system calls and end at the size
// they had when opened; larger ones are files. Both read as io.Readers must.
func TestGet_SmallAndLargeObjects_ReadLikeReaders(t *testing.T) {
	b := mustNew(t, t.TempDir())
	ctx := context.Background()
	for _, size := range []int{0, 1, 13, 64 << 10, 64<<10 + 1, 300 << 10} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(i * 7)
		}
		name := fmt.Sprintf("ns/_kv/k%d.ion.x", size)
		if err := b.Put(ctx, name, bytes.NewReader(want), int64(size)); err != nil {
			t.Fatal(err)
		}
		rc, err := b.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := iotest.TestReader(rc, want); err != nil {
			t.Errorf("%d bytes: %v", size, err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("%d bytes: Close = %v", size, err)
		}
		if err := rc.Close(); err == nil {
			t.Errorf("%d bytes: second Close succeeded", size)
		}
		// One read of a byte more than the object returns it all and io.EOF
		// at once, as Store.read asks.
		if size <= 64<<10 {
			rc, err := b.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, size+1)
			n, err := rc.Read(buf)
			rc.Close()
			if n != size || err != io.EOF || !bytes.Equal(buf[:n], want) {
				t.Errorf("%d bytes: Read of %d = %d, %v; want %d, EOF", size, size+1, n, err, size)
			}
		}
	}
}

func TestIter_SkipsTempFiles_RemovesStaleOnes(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	ctx := context.Background()
	if err := b.Put(ctx, "ns/obj", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "ns", ".kvflow-tmp-fresh")
	stale := filepath.Join(dir, "ns", ".kvflow-tmp-stale")
	for _, p := range []string{fresh, stale} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := b.Iter(ctx, "", func(name string, _ time.Time) error {
		names = append(names, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "ns/obj" {
		t.Fatalf("Iter = %v, want only ns/obj", names)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temp file was removed: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file still there: %v", err)
	}
}

func TestDelete_RemovesEmptyDirectories_KeepsRoot(t *testing.T) {
	dir := t.TempDir()
	b := mustNew(t, dir)
	ctx := context.Background()
	for _, n := range []string{"a/b/c/1", "a/x"} {
		if err := b.Put(ctx, n, strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(ctx, "a/b/c/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directory a/b still there: %v", err)
	}
	if err := b.Delete(ctx, "a/x"); err != nil {
		t.Fatal(err)
	}
	if files := allFiles(t, dir); len(files) != 0 {
		t.Fatalf("left over: %v", files)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("root removed: %v", err)
	}
}

func TestGet_Directory_NotExist(t *testing.T) {
	b := mustNew(t, t.TempDir())
	if err := b.Put(context.Background(), "a/b", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(context.Background(), "a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Get of a directory = %v, want not exist", err)
	}
	if _, err := b.Get(context.Background(), "a/b/c"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Get below an object = %v, want not exist", err)
	}
}

func TestPing_RootRemoved_Unavailable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	b := mustNew(t, dir)
	if err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := b.Ping(context.Background())
	// /readyz is public: the message never names the server's directory.
	if kvflow.ErrorCode(err) != kvflow.EUNAVAILABLE || strings.Contains(err.Error(), dir) {
		t.Fatalf("Ping without root = %v, want EUNAVAILABLE without the path %s", err, dir)
	}
}

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]string{
		"file:///var/lib/kvflow":         "/var/lib/kvflow",
		"file:///var/lib/kvflow/":        "/var/lib/kvflow",
		"file://localhost/srv/data/../x": "/srv/x",
	} {
		got, err := fs.ParseURL(raw)
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for raw, part := range map[string]string{
		"s3://bucket/x":         "scheme",
		"file://data/dir":       "host",
		"file:relative":         "absolute",
		"file:///data?sync=off": "query",
		"file://%zz":            "not a URL",
	} {
		_, err := fs.ParseURL(raw)
		if kvflow.ErrorCode(err) != kvflow.EINVALID || !strings.Contains(err.Error(), part) {
			t.Errorf("ParseURL(%q) = %v; want EINVALID mentioning %q", raw, err, part)
		}
	}
}

func mustNew(t *testing.T, dir string) *fs.Bucket {
	t.Helper()
	b, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allFiles lists every file and directory below dir.
func allFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Prepared files: not objects until written, written in place by Put, and
// a prepared name whose file is gone (garbage collection took it) still
// written; after Close, Prepare makes nothing.
func TestPrepare_WrittenInPlace_ListedOnlyOnceWritten(t *testing.T) {
	ctx := context.Background()
	b := mustNew(t, t.TempDir())
	listed := func() []string {
		var got []string
		if err := b.Iter(ctx, "", func(name string, _ time.Time) error { got = append(got, name); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	ns := "team.prep"
	first := storage.ObjectName(ns)
	if err := b.Put(ctx, first, strings.NewReader("first"), 5); err != nil { // makes the directory, as a namespace's first write does
		t.Fatal(err)
	}
	names := []string{storage.ObjectName(ns), storage.ObjectName(ns), storage.ObjectName(ns)}
	b.Prepare(ctx, names)
	if got := listed(); len(got) != 1 || got[0] != first { // registered at once, made in the background
		t.Fatalf("Iter = %v, want only %s: prepared names are not objects", got, first)
	}
	b.WaitPrepared()
	for _, name := range names {
		if fi, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(name))); err != nil || fi.Size() != 0 {
			t.Fatalf("prepared %s: %v, %v; want an empty file", name, fi, err)
		}
	}
	if got := listed(); len(got) != 1 || got[0] != first {
		t.Fatalf("Iter = %v, want only %s: prepared files are not objects", got, first)
	}
	if _, err := b.Get(ctx, names[2]); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
		t.Fatalf("Get of a prepared name = %v, want ENOTFOUND: prepared files are not objects", err)
	}
	if err := b.Put(ctx, names[0], strings.NewReader("in place"), 8); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, names[1]); err != nil { // taken before its write
		t.Fatal(err)
	}
	if err := b.Put(ctx, names[1], strings.NewReader("recreated"), 9); err != nil {
		t.Fatal(err)
	}
	readBack(t, b, map[string]string{names[0]: "in place", names[1]: "recreated"})
	if got := listed(); len(got) != 3 {
		t.Errorf("Iter = %v, want the 3 written objects", got)
	}
	if err := b.Put(ctx, names[2], strings.NewReader("wrong size"), 3); kvflow.ErrorCode(err) != kvflow.EINVALID {
		t.Errorf("Put with a wrong size into a prepared file = %v, want EINVALID", err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(names[2]))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed write into a prepared file left it: %v", err)
	}
	b.Close()
	late := storage.ObjectName(ns)
	b.Prepare(ctx, []string{late})
	if _, err := os.Stat(filepath.Join(b.Root(), filepath.FromSlash(late))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Prepare after Close made %s: %v", late, err)
	}
}

// Writes race the background making of their names' files: names are
// handed out as soon as Prepare returns. Every write reads back whole, Iter
// lists exactly the written names, and an unwritten name is no object.
func TestPrepare_RacingWrites_EachReadBack(t *testing.T) {
	ctx := context.Background()
	b := mustNew(t, t.TempDir())
	const ns, rounds, per = "team.race", 20, 64
	if err := b.Put(ctx, storage.ObjectName(ns), strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	var unwritten []string
	var mu sync.Mutex
	for r := 0; r < rounds; r++ {
		names := make([]string, per)
		for i := range names {
			names[i] = storage.ObjectName(ns)
		}
		b.Prepare(ctx, names)
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < per-8; i += 8 { // the last 8 stay unwritten
					v := fmt.Sprintf("value %d/%d %s", r, i, strings.Repeat("v", i))
					if err := b.Put(ctx, names[i], strings.NewReader(v), int64(len(v))); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					want[names[i]] = v
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		unwritten = append(unwritten, names[per-8:]...)
	}
	b.WaitPrepared()
	readBack(t, b, want)
	for _, name := range unwritten {
		if _, err := b.Get(ctx, name); kvflow.ErrorCode(err) != kvflow.ENOTFOUND {
			t.Fatalf("Get of unwritten prepared %s = %v, want ENOTFOUND", name, err)
		}
	}
	n := 0
	if err := b.Iter(ctx, "", func(name string, _ time.Time) error {
		if _, ok := want[name]; ok {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("Iter listed %d of the %d written objects", n, len(want))
	}
}

// logAll is a journal that takes every object.
type logAll struct {
	mu    sync.Mutex
	names []string
}

func (j *logAll) LogObject(name string, data []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.names = append(j.names, name)
	return true
}

// A checkpoint's sync, of each file (few objects) or of the file system
// (many), succeeds with a missing object among them and leaves every
// logged value readable.
func TestSyncObjects_FewOrMany_ValuesReadBack(t *testing.T) {
	for _, n := range []int{3, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := context.Background()
			b := mustNew(t, t.TempDir())
			j := &logAll{}
			b.UseJournal(j)
			want := map[string]string{}
			for i := range n {
				name, v := storage.ObjectName("team.sync"), fmt.Sprintf("value %d", i)
				if err := b.Put(ctx, name, strings.NewReader(v), int64(len(v))); err != nil {
					t.Fatal(err)
				}
				want[name] = v
			}
			if len(j.names) != n {
				t.Fatalf("journal logged %d objects, want %d", len(j.names), n)
			}
			if err := b.SyncObjects(ctx, append(j.names, storage.ObjectName("team.sync"))); err != nil {
				t.Fatalf("SyncObjects: %v", err)
			}
			readBack(t, b, want)
		})
	}
}

// readBack checks that each object holds its value.
func readBack(t *testing.T, b *fs.Bucket, want map[string]string) {
	t.Helper()
	for name, v := range want {
		rc, err := b.Get(context.Background(), name)
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != v {
			t.Fatalf("Get %s = %q, want %q", name, got, v)
		}
	}
}
