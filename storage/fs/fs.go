// Package fs stores value objects as files under a local directory.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// tmpPrefix starts the name of a file being written. Such files are never
// objects: Iter skips them and object names may not use the prefix.
const tmpPrefix = ".kvflow-tmp-"

// staleTemp is how long a temp file may go unwritten before Iter removes it
// as the leftover of a crashed writer.
const staleTemp = time.Hour

var _ storage.Bucket = (*Bucket)(nil)

// Bucket keeps each object in a file named after the object under Root.
// Writes go to a temp file that is synced and renamed into place, so a reader
// or a crash never leaves a torn object. A KV value object is the exception:
// its name is new on every write and nothing reads it before its metadata
// commits, so it is written in place and its file and directory are synced
// side by side, the directory sync shared with concurrent writers; or, when
// its name was reserved ahead, into an empty file made and synced by
// Prepare, so that only the file is synced.
type Bucket struct {
	root     string
	dirs     dirSyncer
	prepared sync.Map // object name → struct{}: an empty file made by Prepare, its entry synced

	mu        sync.Mutex
	closed    bool
	preparing sync.WaitGroup

	journal storage.Journal // small value objects are logged, not synced (journal.go)
}

// New returns a Bucket rooted at dir, creating the directory if needed.
func New(dir string) (*Bucket, error) {
	if dir == "" {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Storage directory cannot be empty.")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Storage directory %q cannot be made absolute: %v.", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("Storage directory %s cannot be created: %v.", abs, unwrapPath(err)), Err: err}
	}
	return &Bucket{root: abs}, nil
}

// ParseURL returns the directory of a file:///absolute/dir storage URL.
func ParseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", kvflow.Errorf(kvflow.EINVALID, "Storage URL %q is not a URL: %v.", raw, err)
	}
	switch {
	case u.Scheme != "file":
		return "", kvflow.Errorf(kvflow.EINVALID, "Storage URL %q has scheme %q; expected file:///absolute/dir.", raw, u.Scheme)
	case u.Host != "" && u.Host != "localhost":
		return "", kvflow.Errorf(kvflow.EINVALID, "Storage URL %q names host %q; expected file:///absolute/dir with three slashes.", raw, u.Host)
	case u.Path == "" || !strings.HasPrefix(u.Path, "/"):
		return "", kvflow.Errorf(kvflow.EINVALID, "Storage URL %q has no absolute directory path; expected file:///absolute/dir.", raw)
	case u.RawQuery != "":
		return "", kvflow.Errorf(kvflow.EINVALID, "Storage URL %q has query parameters; a file URL takes none.", raw)
	}
	return filepath.Clean(u.Path), nil
}

// Root returns the absolute directory holding the objects.
func (b *Bucket) Root() string { return b.root }

// WritesInPlace reports that Put shows a value object under its name from
// its first byte (written in place, not renamed at the end).
func (b *Bucket) WritesInPlace() bool { return true }

// Put writes r to a temp file beside the target, syncs it, renames it over
// the target and syncs the directory.
func (b *Bucket) Put(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	path, err := b.path(name)
	if err != nil {
		return err
	}
	if done, err := b.putLogged(ctx, name, path, r, size); done {
		return err
	}
	dir := filepath.Dir(path)
	fresh := storage.IsValueObject(name)

	var f *os.File
	if fresh {
		var prepared bool
		f, prepared, err = b.openFresh(name, path)
		if prepared {
			return b.write(ctx, name, f, r, size, nil)
		}
		if errors.Is(err, iofs.ErrExist) { // not new after all: replace it atomically
			fresh = false
		} else if err != nil {
			return b.fail("write", name, err)
		}
	}
	if !fresh {
		if err = b.inDir(dir, func() (err error) { f, err = os.CreateTemp(dir, tmpPrefix+"*"); return err }); err != nil {
			return b.fail("write", name, err)
		}
	}
	// A fresh file's directory entry is synced while its data is written
	// and synced; a failed write removes the file.
	var dirErr chan error
	if fresh {
		dirErr = make(chan error, 1)
		go func() { dirErr <- b.dirs.sync(dir) }()
	}
	if err := b.write(ctx, name, f, r, size, dirErr); err != nil || fresh {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return b.fail("write", name, err)
	}
	if err = b.dirs.sync(dir); err != nil {
		return b.fail("write", name, err)
	}
	return nil
}

// openFresh opens a value object's file for writing: the empty file Prepare
// made (its directory entry synced: prepared), or a new one; iofs.ErrExist
// when the name exists after all.
func (b *Bucket) openFresh(name, path string) (f *os.File, prepared bool, err error) {
	if state, ok := b.prepared.LoadAndDelete(name); ok { // unless garbage collection took it
		flag := os.O_WRONLY
		if state == prepPending { // Prepare may not have made it yet
			flag |= os.O_CREATE
		}
		if f, err = openFile(path, flag, 0o644); err == nil {
			return f, state == prepReady, nil
		}
	}
	err = b.inDir(filepath.Dir(path), func() (err error) {
		f, err = openFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		return err
	})
	return f, false, err
}

// inDir runs create after making dir, again when a concurrent Delete
// removed the emptied directory in between.
func (b *Bucket) inDir(dir string, create func() error) error {
	for attempt := 0; ; attempt++ {
		err := b.mkdirAll(dir)
		if err == nil {
			if err = create(); err == nil {
				return nil
			}
		}
		if !errors.Is(err, iofs.ErrNotExist) || attempt == 5 {
			return err
		}
	}
}

// write copies r into f and syncs and closes it, waiting for dirErr when
// given; on failure it removes f.
func (b *Bucket) write(ctx context.Context, name string, f *os.File, r io.Reader, size int64, dirErr chan error) (err error) {
	defer func() {
		if dirErr != nil {
			if derr := <-dirErr; err == nil && derr != nil {
				err = b.fail("write", name, derr)
			}
		}
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			b.removeEmptyDirs(filepath.Dir(f.Name()))
		}
	}()

	src := &sourceReader{ctx: ctx, r: r}
	n, err := io.Copy(f, src)
	if err != nil {
		if src.err != nil {
			return fmt.Errorf("write object %q: %w", name, err)
		}
		return b.fail("write", name, err)
	}
	if size >= 0 && n != size {
		return kvflow.Errorf(kvflow.EINVALID, "Object %q was announced as %d bytes but the value had %d.", name, size, n)
	}
	if err = f.Sync(); err != nil {
		return b.fail("write", name, err)
	}
	if err = f.Close(); err != nil {
		return b.fail("write", name, err)
	}
	return nil
}

// Prepare implements storage.Preparer: an empty file for each name, and
// one sync of each directory. Creating a file allocates an inode, which on
// ext4 costs from 20 µs to over 300 µs by directory; a write of a small
// value into an existing file costs about 20 µs.
//
// The names are registered before Prepare returns, so they may be handed
// out at once; the files are made in the background. Get and Iter show no
// registered name until Put writes it. Put takes a name's registration:
// into a ready file it writes without a directory sync; with the file not
// made yet, or made but its directory not yet synced, it writes as for any
// new name, and the background work leaves that name alone.
func (b *Bucket) Prepare(ctx context.Context, names []string) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.preparing.Add(1)
	b.mu.Unlock()
	todo := make([]string, 0, len(names))
	for _, name := range names {
		if storage.IsValueObject(name) {
			b.prepared.Store(name, prepPending)
			todo = append(todo, name)
		}
	}
	go func() {
		defer b.preparing.Done()
		b.makePrepared(ctx, todo)
	}()
}

// Prepare's registrations: pending until the file and its directory entry
// are durable, then ready.
const (
	prepPending = iota
	prepReady
)

func (b *Bucket) makePrepared(ctx context.Context, names []string) {
	dirs := map[string][]string{}
	for _, name := range names {
		path, err := b.path(name)
		if _, ok := b.prepared.Load(name); !ok || err != nil || ctx.Err() != nil {
			b.prepared.CompareAndDelete(name, prepPending)
			continue
		}
		f, err := openFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil && f.Close() != nil {
			os.Remove(path)
			err = errors.New("close")
		}
		if err != nil { // taken by a write, or its directory is gone: left to Put
			b.prepared.CompareAndDelete(name, prepPending)
			continue
		}
		dir := filepath.Dir(path)
		dirs[dir] = append(dirs[dir], name)
	}
	for dir, made := range dirs {
		state := prepReady
		if b.dirs.sync(dir) != nil {
			state = -1
		}
		for _, name := range made {
			if state == prepReady {
				b.prepared.CompareAndSwap(name, prepPending, prepReady)
			} else {
				b.prepared.CompareAndDelete(name, prepPending)
			}
		}
	}
}

// Close waits for Prepare calls under way; later ones do nothing.
func (b *Bucket) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.preparing.Wait()
	return nil
}

// Get opens the object's file, or a pack member's range of its pack's file.
func (b *Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	pack, off, n, member := storage.PackMember(name)
	if member {
		name = pack
	}
	path, err := b.path(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if member {
		f, err := openFile(path, os.O_RDONLY, 0)
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, notFound(name)
		} else if err != nil {
			return nil, b.fail("read", name, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, off, n), f}, nil
	}
	if _, ok := b.prepared.Load(name); ok { // made ahead, not yet written: no object, as Iter says
		return nil, notFound(name)
	}
	rc, err := openObject(path)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || err == errIsDir {
			return nil, notFound(name)
		}
		return nil, b.fail("read", name, err)
	}
	return rc, nil
}

// errIsDir is openObject's error for a directory, which is no object.
var errIsDir = errors.New("is a directory")

// Delete removes the object's file, then any directories it leaves empty.
func (b *Bucket) Delete(ctx context.Context, name string) error {
	path, err := b.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.prepared.Delete(name)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return b.fail("delete", name, err)
	}
	b.removeEmptyDirs(filepath.Dir(path))
	return nil
}

// removeEmptyDirs removes dir and its parents below the root while they are
// empty; removing a non-empty directory fails, which ends the climb.
func (b *Bucket) removeEmptyDirs(dir string) {
	for ; dir != b.root && strings.HasPrefix(dir, b.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			return
		}
	}
}

// Iter calls fn for each object whose name starts with prefix, with the
// file's modification time. It removes temp files left by crashed writers.
func (b *Bucket) Iter(ctx context.Context, prefix string, fn func(name string, modified time.Time) error) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	rootSlash := b.root
	if !strings.HasSuffix(rootSlash, string(filepath.Separator)) {
		rootSlash += string(filepath.Separator)
	}
	now := time.Now()
	return filepath.WalkDir(start, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			// Gone meanwhile (or never there): nothing to list.
			if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return b.fail("list", prefix, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				return nil
			}
			return b.fail("list", prefix, err)
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			if now.Sub(info.ModTime()) > staleTemp {
				os.Remove(path)
			}
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		name := filepath.ToSlash(strings.TrimPrefix(path, rootSlash))
		if _, ok := b.prepared.Load(name); ok {
			return nil // not written yet
		}
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		return fn(name, info.ModTime())
	})
}

// Ping checks the root directory is still there.
func (b *Bucket) Ping(ctx context.Context) error {
	fi, err := os.Stat(b.root)
	if err != nil {
		return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("Storage directory is unavailable: %v.", unwrapPath(err)), Err: err}
	}
	if !fi.IsDir() {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Storage directory is not a directory.")
	}
	return nil
}

// path returns the file of an object after checking the name stays inside root.
func (b *Bucket) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// checkName refuses names that could leave the root or clash with temp files.
func checkName(name string) error {
	switch {
	case name == "":
		return kvflow.Errorf(kvflow.EINVALID, "Object name cannot be empty.")
	case strings.HasPrefix(name, "/"):
		return kvflow.Errorf(kvflow.EINVALID, "Object name %q starts with /; names are relative to the storage directory.", kvflow.Clip(name))
	case strings.ContainsAny(name, "\\\x00"):
		return kvflow.Errorf(kvflow.EINVALID, "Object name %q contains a backslash or a NUL byte; use / to separate parts.", kvflow.Clip(name))
	}
	for _, seg := range strings.Split(name, "/") {
		switch {
		case seg == "..":
			return kvflow.Errorf(kvflow.EINVALID, "Object name %q contains a \"..\" part, which would leave the storage directory.", kvflow.Clip(name))
		case seg == "" || seg == ".":
			return kvflow.Errorf(kvflow.EINVALID, "Object name %q has an empty or \".\" part between slashes.", kvflow.Clip(name))
		case strings.HasPrefix(seg, tmpPrefix):
			return kvflow.Errorf(kvflow.EINVALID, "Object name %q uses the reserved prefix %q.", kvflow.Clip(name), tmpPrefix)
		}
	}
	return nil
}

// checkPrefix refuses listing prefixes that could leave the root.
func checkPrefix(prefix string) error {
	switch {
	case prefix == "":
		return nil
	case strings.HasPrefix(prefix, "/"):
		return kvflow.Errorf(kvflow.EINVALID, "Object prefix %q starts with /; prefixes are relative to the storage directory.", kvflow.Clip(prefix))
	case strings.ContainsAny(prefix, "\\\x00"):
		return kvflow.Errorf(kvflow.EINVALID, "Object prefix %q contains a backslash or a NUL byte; use / to separate parts.", kvflow.Clip(prefix))
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == ".." || seg == "." {
			return kvflow.Errorf(kvflow.EINVALID, "Object prefix %q contains a %q part.", kvflow.Clip(prefix), seg)
		}
	}
	return nil
}

// mkdirAll creates dir and its missing parents, syncing each parent so the
// new entries survive a crash.
func (b *Bucket) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if dir != b.root && parent != dir {
		if err := b.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return nil
		}
		return err
	}
	return syncDir(parent)
}

// syncDir flushes a directory's entries to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fail wraps an operating system error as EUNAVAILABLE. The message names
// the object, never the server's directory.
func (b *Bucket) fail(op, name string, err error) error {
	return &kvflow.Error{
		Code:    kvflow.EUNAVAILABLE,
		Message: fmt.Sprintf("Storage directory cannot %s object %q: %v.", op, kvflow.Clip(name), unwrapPath(err)),
		Err:     err,
	}
}

// notFound is the error for a missing object; it matches fs.ErrNotExist.
func notFound(name string) error {
	return &kvflow.Error{Code: kvflow.ENOTFOUND, Message: fmt.Sprintf("Object %q does not exist.", kvflow.Clip(name)), Err: iofs.ErrNotExist}
}

// unwrapPath drops the paths from a *PathError or an *os.LinkError: messages
// name objects, never the server's files.
func unwrapPath(err error) error {
	var pe *iofs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) {
		return pe.Err
	} else if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// sourceReader stops a copy when ctx ends and remembers the caller's read errors.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}
