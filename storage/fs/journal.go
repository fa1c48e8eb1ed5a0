package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

var _ storage.JournalBucket = (*Bucket)(nil)

// UseJournal makes Put hand small value objects to j instead of syncing
// their files: j's next commit makes them durable, and its checkpoint
// syncs their files (SyncObjects).
func (b *Bucket) UseJournal(j storage.Journal) { b.journal = j }

// putLogged writes a small fresh value object's file without syncing it and
// logs its bytes; done is false when the object is not for the journal (it
// then returns before reading r).
func (b *Bucket) putLogged(ctx context.Context, name, path string, r io.Reader, size int64) (done bool, err error) {
	if b.journal == nil || size < 0 || size > storage.MaxJournaledObject || !storage.IsValueObject(name) {
		return false, nil
	}
	data := make([]byte, size)
	src := &sourceReader{ctx: ctx, r: r}
	if n, err := io.ReadFull(src, data); err != nil {
		if src.err != nil {
			return true, fmt.Errorf("write object %q: %w", name, err)
		}
		return true, kvflow.Errorf(kvflow.EINVALID, "Object %q was announced as %d bytes but the value had %d.", name, size, n)
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(src, 1)); n > 0 {
		return true, kvflow.Errorf(kvflow.EINVALID, "Object %q was announced as %d bytes but the value had more.", name, size)
	}
	f, prepared, err := b.openFresh(name, path)
	if errors.Is(err, iofs.ErrExist) { // not new after all: the synced path (size -1 keeps it off this one)
		return true, b.Put(ctx, name, bytes.NewReader(data), -1)
	}
	if err != nil {
		return true, b.fail("write", name, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !b.journal.LogObject(name, data) {
		err = b.syncFile(path, !prepared)
	}
	if err != nil {
		os.Remove(path)
		b.removeEmptyDirs(filepath.Dir(path))
		return true, b.fail("write", name, err)
	}
	return true, nil
}

// syncFile syncs a file, and its directory when dir is set.
func (b *Bucket) syncFile(path string, dir bool) error {
	f, err := openFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && dir {
		err = b.dirs.sync(filepath.Dir(path))
	}
	return err
}

// syncAllFrom is how many objects make SyncObjects sync the whole file
// system instead of each file (a variable for tests).
var syncAllFrom = 32

// SyncObjects implements storage.JournalBucket: many objects with one sync
// of the file system where there is one; else each file, then each
// directory once, a few at a time.
func (b *Bucket) SyncObjects(ctx context.Context, names []string) error {
	if len(names) >= syncAllFrom {
		if ok, err := syncAll(b.root); ok {
			if err != nil {
				return b.fail("sync", "(journal checkpoint)", err)
			}
			return ctx.Err()
		}
	}
	dirs := map[string]bool{}
	paths := make([]string, 0, len(names))
	for _, name := range names {
		path, err := b.path(name)
		if err != nil {
			return err
		}
		paths = append(paths, path)
		dirs[filepath.Dir(path)] = true
	}
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		work  = make(chan func() error)
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fn := range work {
				if err := fn(); err != nil && !errors.Is(err, iofs.ErrNotExist) {
					mu.Lock()
					first = cmp(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, path := range paths {
		work <- func() error {
			f, err := openFile(path, os.O_RDONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Sync()
		}
	}
	close(work)
	wg.Wait()
	for dir := range dirs {
		if err := syncDir(dir); err != nil && !errors.Is(err, iofs.ErrNotExist) && first == nil {
			first = err
		}
	}
	if first != nil {
		return b.fail("sync", "(journal checkpoint)", first)
	}
	return ctx.Err()
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// RestoreObject implements storage.JournalBucket: the file is written again
// the synced way, unless it already holds these bytes. It runs before UseJournal,
// so Put does not log it.
func (b *Bucket) RestoreObject(ctx context.Context, name string, data []byte) error {
	path, err := b.path(name)
	if err != nil {
		return err
	}
	if got, err := os.ReadFile(path); err == nil && bytes.Equal(got, data) {
		return nil
	}
	return b.Put(ctx, name, bytes.NewReader(data), int64(len(data)))
}
