// Package storage is kvflow's typed, namespaced key-value store: metadata in
// an Index (PostgreSQL or SQLite), values as ION objects in a Bucket (S3 or a
// local directory).
package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/rs/xid"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage/seal"
)

const (
	// MaxValueSize bounds a value read or written whole; larger STRING values
	// go through SetStream and Open.
	MaxValueSize = 64 << 20
	// DefaultListLimit and MaxListLimit bound one page of List.
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// DefaultGCGrace is how long a replaced or orphan object is kept before
	// garbage collection, so readers that fetched its metadata can still read it.
	DefaultGCGrace = 5 * time.Minute
)

// Store is the KV store. It is safe for concurrent use.
type Store struct {
	index  Index
	bucket Bucket
	now    func() time.Time
	cache  *lru.Cache[string, Value] // decoded values by object name; names are unique per write, so never stale
	log    *slog.Logger
	wrote  signal // fired after each write or delete this process makes
	keys   *seal.Keyring
	names  names // reserved object names (intent.go)
}

// Options tune a Store; the zero value is fine.
type Options struct {
	Now       func() time.Time // clock, for tests
	CacheSize int              // values kept decoded in memory; 0: 4096, <0: none
	Logger    *slog.Logger
	// Keys seal the values of sensitive entries; nil: sensitive writes are
	// refused (EUNAVAILABLE) and sensitive reads fail.
	Keys *seal.Keyring
}

// New returns a Store over an index and a bucket.
func New(index Index, bucket Bucket, opts Options) *Store {
	s := &Store{index: index, bucket: bucket, now: opts.Now, log: opts.Logger, keys: opts.Keys}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 4096
	}
	if opts.CacheSize > 0 {
		s.cache, _ = lru.New[string, Value](opts.CacheSize)
	}
	return s
}

// SetOptions are the optional parts of a write.
type SetOptions struct {
	NoOverwrite bool          // fail with ECONFLICT if a live entry exists (Kestra's overwrite: false)
	IfVersion   int64         // fail with ECONFLICT unless the live entry has this version (compare-and-set)
	TTL         time.Duration // 0: never expires; negative is refused
	ExpiresAt   time.Time     // an absolute expiry; when set it wins over TTL
	Description string
	Sensitive   bool // seal the value object and mask the value (see Secrets)
}

// Set writes v under ns/key and returns the new metadata. The value object is
// written first under a fresh name, then the metadata in one statement, so a
// crash leaves at most an orphan object and readers never see a torn value.
func (s *Store) Set(ctx context.Context, ns, key string, v Value, o SetOptions) (*Entry, error) {
	if err := s.checkSet(ns, key, o); err != nil {
		return nil, err
	}
	if err := checkValue(v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := EncodeION(&buf, v); err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Value for key '%s' in namespace '%s' cannot be encoded: %v.", key, ns, err)
	}
	body := buf.Bytes()
	if o.Sensitive {
		SecretsFrom(ctx).AddValue(v) // what an execution writes as sensitive, it masks from now on
		var err error
		if body, err = s.seal(ns, key, body); err != nil {
			return nil, err
		}
	}
	if len(body) > MaxValueSize {
		return nil, kvflow.Errorf(kvflow.ETOOLARGE, "Value for key '%s' in namespace '%s' is %d bytes; the limit for a whole value is %d bytes.", key, ns, len(body), MaxValueSize)
	}
	return s.put(ctx, ns, key, v.Type, bytes.NewReader(body), int64(len(body)), sha256Hex(body), o)
}

// SetStream writes the bytes of r as a STRING value, with memory that does
// not grow with its size.
func (s *Store) SetStream(ctx context.Context, ns, key string, r io.Reader, o SetOptions) (*Entry, error) {
	if err := s.checkSet(ns, key, o); err != nil {
		return nil, err
	}
	if o.Sensitive { // sealed whole: read it whole, within the limit
		data, err := io.ReadAll(io.LimitReader(&utf8Checker{r: r}, MaxValueSize+1))
		if err != nil {
			return nil, err
		}
		if len(data) > MaxValueSize {
			return nil, kvflow.Errorf(kvflow.ETOOLARGE, "Sensitive value for key '%s' in namespace '%s' is over the limit of %d bytes.", key, ns, MaxValueSize)
		}
		return s.Set(ctx, ns, key, Value{STRING, string(data)}, o)
	}
	pr, pw := io.Pipe()
	go func() {
		sw := newIONStringWriter(pw)
		_, err := io.Copy(sw, &utf8Checker{r: r})
		if err == nil {
			err = sw.Close()
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	return s.put(ctx, ns, key, STRING, pr, -1, "", o)
}

func (s *Store) checkSet(ns, key string, o SetOptions) error {
	if err := validateNames(ns, key); err != nil {
		return err
	}
	if o.TTL < 0 {
		return kvflow.Errorf(kvflow.EINVALID, "TTL for key '%s' in namespace '%s' cannot be negative.", key, ns)
	}
	if err := ValidateDescription(o.Description); err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "%s (key '%s' in namespace '%s').", strings.TrimSuffix(err.Error(), "."), key, ns)
	}
	return nil
}

// checkValue checks that v's Go value is what its type holds. JSON
// containers are checked leaf by leaf when they are encoded.
func checkValue(v Value) error {
	ok := false
	switch x := v.V.(type) {
	case string:
		if !utf8.ValidString(x) {
			return kvflow.Errorf(kvflow.EINVALID, "Value is not valid UTF-8 text.")
		}
		ok = v.Type == STRING
	case int64:
		ok = v.Type == NUMBER
	case float64:
		ok = v.Type == NUMBER && !math.IsNaN(x) && !math.IsInf(x, 0)
	case json.Number:
		_, valid := parseNumber(x.String())
		ok = v.Type == NUMBER && valid
	case bool:
		ok = v.Type == BOOLEAN
	case time.Time:
		ok = v.Type == DATETIME
	case Date:
		ok = v.Type == DATE
	case Duration:
		ok = v.Type == DURATION
	case map[string]any, []any:
		ok = v.Type == JSON
	}
	if !ok {
		if _, err := ParseType(string(v.Type)); err != nil {
			return err
		}
		return kvflow.Errorf(kvflow.EINVALID, "Value of Go type %T does not hold a %s.", v.V, v.Type)
	}
	return nil
}

// put writes body, whose size and hash are given (then body is an
// io.ReadSeeker) or, for a stream (size -1), measured on the way. A whole
// value whose intent garbage collection took while it uploaded (possible only
// with a grace shorter than the upload) is written again under a fresh name,
// not a reserved one.
func (s *Store) put(ctx context.Context, ns, key string, t Type, body io.Reader, size int64, sum string, o SetOptions) (*Entry, error) {
	for attempt := 0; ; attempt++ {
		e, err := s.putOnce(ctx, ns, key, t, body, size, sum, o, attempt == 0)
		if err == nil {
			ownWrite(ctx, ns, key, false)
		}
		if !errors.Is(err, ErrIntentGone) || size < 0 || attempt == 2 {
			return e, err
		}
		if _, err := body.(io.Seeker).Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
}

func (s *Store) putOnce(ctx context.Context, ns, key string, t Type, body io.Reader, size int64, sum string, o SetOptions, reserved bool) (*Entry, error) {
	var name string
	if reserved = reserved && size >= 0; reserved {
		name, reserved = s.takeName(ns)
	}
	if !reserved {
		name = ObjectName(ns)
	}
	intent := []Intent{{Namespace: ns, Object: name}}
	var h hash.Hash
	var cr *countingReader
	var wait func() error
	if size < 0 {
		h = sha256.New()
		cr = &countingReader{r: io.TeeReader(body, h)}
		body = cr
		// A stream may take long: its intent is recorded before the upload
		// starts and renewed while it runs, so that garbage collection never
		// takes it from a live upload.
		if err := s.index.AddIntents(ctx, time.Now(), intent); err != nil {
			return nil, unavailable(err, "Cannot write value for key '%s' in namespace '%s': the database is unreachable", key, ns)
		}
		var stop func()
		ctx, stop = s.renewIntent(ctx, intent[0])
		defer stop()
	} else if !reserved {
		// Without a reserved name, a whole value records its intent while
		// it uploads.
		wait = s.recordIntents(ctx, intent)
		body = s.gate(body.(io.ReadSeeker), size, wait)
	}
	err := s.bucket.Put(ctx, name, body, size)
	if err == nil && wait != nil {
		err = wait()
	}
	if err != nil {
		// An intent, if recorded, stays: garbage collection removes what was uploaded.
		if cause := context.Cause(ctx); errors.Is(cause, ErrIntentGone) {
			return nil, cause
		}
		var ierr intentError
		if errors.As(err, &ierr) {
			s.dropObject(ctx, name)
			return nil, unavailable(ierr.err, "Cannot write value for key '%s' in namespace '%s': the database is unreachable", key, ns)
		}
		if kvflow.ErrorCode(err) == kvflow.EINVALID {
			return nil, err
		}
		if s.intentTaken(ctx, intent[0], wait) {
			return nil, ErrIntentGone
		}
		return nil, unavailable(err, "Cannot write value for key '%s' in namespace '%s': the object store is unreachable", key, ns)
	}
	if cr != nil {
		size, sum = cr.n, hex.EncodeToString(h.Sum(nil))
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	e := &Entry{
		Namespace: ns, Key: key, Type: t, Object: name, Size: size, Hash: sum,
		Description: o.Description, Updated: now, Writer: WriterFrom(ctx), Sensitive: o.Sensitive,
	}
	if !o.ExpiresAt.IsZero() {
		exp := o.ExpiresAt.UTC().Truncate(time.Microsecond)
		e.Expires = &exp
	} else if o.TTL > 0 {
		exp := now.Add(o.TTL)
		e.Expires = &exp
	}
	if err := s.index.PutEntry(ctx, e, PutCondition{NoOverwrite: o.NoOverwrite, IfVersion: o.IfVersion}); err != nil {
		s.dropObject(ctx, name) // unreferenced: remove it now rather than at the next full sweep
		switch {
		case errors.Is(err, ErrIntentGone):
			return nil, err
		case kvflow.ErrorCode(err) == kvflow.ECONFLICT && o.IfVersion > 0:
			return nil, kvflow.Errorf(kvflow.ECONFLICT, "Cannot set value for key '%s' in namespace '%s': it is no longer at version %d.", key, ns, o.IfVersion)
		case kvflow.ErrorCode(err) == kvflow.ECONFLICT:
			return nil, kvflow.Errorf(kvflow.ECONFLICT, "Cannot set value for key '%s' in namespace '%s'. Key already exists and `overwrite` is set to `false`.", key, ns)
		}
		return nil, unavailable(err, "Cannot write metadata for key '%s' in namespace '%s': the database is unreachable", key, ns)
	}
	s.wrote.fire()
	return e, nil
}

// intentTaken reports whether garbage collection took the intent in while
// its upload failed, removing the object under it (the upload's error then
// says only that a file vanished). An intent still there is dated now: what
// was uploaded is collected after the grace.
func (s *Store) intentTaken(ctx context.Context, in Intent, wait func() error) bool {
	if wait != nil && wait() != nil {
		return false // never recorded
	}
	ok, err := s.index.RenewIntent(ctx, in, time.Now())
	return err == nil && !ok
}

// dropObject removes an object no entry points to.
func (s *Store) dropObject(ctx context.Context, name string) {
	if err := s.bucket.Delete(context.WithoutCancel(ctx), name); err != nil {
		s.log.Warn("kv: leaving orphan object", "object", name, "err", err)
	}
}

// Increment atomically adds delta to the NUMBER at ns/key, creating it at
// delta when missing or expired, and returns the new value. Concurrent
// increments never lose an update: each write is a compare-and-set on the
// version. The sum is exact (AddNumbers): an integer counter that would pass
// 64 bits is EINVALID, a key that is not a NUMBER ECONFLICT. A TTL or a
// description, when given, applies on every increment; otherwise an existing
// entry keeps its own, with the same absolute expiry.
func (s *Store) Increment(ctx context.Context, ns, key string, delta Value, o SetOptions) (Value, *Entry, error) {
	if delta.Type != NUMBER {
		return Value{}, nil, kvflow.Errorf(kvflow.EINVALID, "Increment for key '%s' in namespace '%s' must be a NUMBER, not %s.", key, ns, delta.Type)
	}
	if err := checkValue(delta); err != nil {
		return Value{}, nil, err
	}
	if n, ok := delta.V.(json.Number); ok && isIntegerText(n.String()) { // nor would it create one
		return Value{}, nil, kvflow.Errorf(kvflow.EINVALID, "Cannot increment key '%s' in namespace '%s' by %s: a counter holds integers from -9223372036854775808 to 9223372036854775807.", key, ns, kvflow.Clip(n.String()))
	}
	for {
		cur, v, err := s.get(ctx, ns, key) // the live value, even under a snapshot
		next := delta
		write := SetOptions{NoOverwrite: true, TTL: o.TTL, Description: o.Description}
		switch code := kvflow.ErrorCode(err); {
		case code == kvflow.ENOTFOUND || code == kvflow.EEXPIRED:
		case err != nil:
			return Value{}, nil, err
		case cur.Type != NUMBER:
			return Value{}, nil, kvflow.Errorf(kvflow.ECONFLICT, "Cannot increment key '%s' in namespace '%s': it holds a %s, not a NUMBER.", key, ns, cur.Type)
		default:
			if next, err = AddNumbers(v, delta); err != nil {
				return Value{}, nil, kvflow.Errorf(kvflow.EINVALID, "Cannot increment key '%s' in namespace '%s': %v", key, ns, err)
			}
			write = SetOptions{IfVersion: cur.Version, TTL: o.TTL, Description: o.Description, Sensitive: cur.Sensitive}
			if o.Description == "" {
				write.Description = cur.Description
			}
			if o.TTL == 0 && cur.Expires != nil {
				write.ExpiresAt = *cur.Expires
			}
		}
		e, err := s.Set(ctx, ns, key, next, write)
		if kvflow.ErrorCode(err) == kvflow.ECONFLICT {
			continue // another writer got there first: read again
		}
		return next, e, err
	}
}

// Get returns the metadata and value of ns/key: ENOTFOUND when missing,
// EEXPIRED when its TTL has passed. Under a snapshot (WithSnapshot) it reads
// the key as it was at the snapshot, or as the snapshot's execution wrote it.
func (s *Store) Get(ctx context.Context, ns, key string) (*Entry, Value, error) {
	if snap, ok := ctx.Value(snapshotKey{}).(Snapshot); ok {
		return s.getAt(ctx, ns, key, snap)
	}
	return s.get(ctx, ns, key)
}

// get reads the live entry.
func (s *Store) get(ctx context.Context, ns, key string) (*Entry, Value, error) {
	for attempt := 0; ; attempt++ {
		e, err := s.live(ctx, ns, key)
		if err != nil {
			return nil, Value{}, err
		}
		if s.cache != nil {
			if v, ok := s.cache.Get(e.Object); ok {
				revealed(ctx, e, v)
				return e, Value{v.Type, copyJSON(v.V)}, nil
			}
		}
		if e.Size > MaxValueSize {
			return nil, Value{}, kvflow.Errorf(kvflow.ETOOLARGE, "Value for key '%s' in namespace '%s' is %d bytes; read it as a stream.", key, ns, e.Size)
		}
		v, err := s.read(ctx, e)
		if errors.Is(err, fs.ErrNotExist) && attempt == 0 {
			continue // replaced and collected since the metadata was read
		} else if errors.Is(err, fs.ErrNotExist) {
			return nil, Value{}, missingObject(e, err)
		} else if err != nil {
			return nil, Value{}, err
		}
		if s.cache != nil {
			s.cache.Add(e.Object, Value{v.Type, copyJSON(v.V)})
		}
		revealed(ctx, e, v)
		return e, v, nil
	}
}

// Stat returns the metadata of a live entry, without its value.
func (s *Store) Stat(ctx context.Context, ns, key string) (*Entry, error) {
	return s.live(ctx, ns, key)
}

func (s *Store) live(ctx context.Context, ns, key string) (*Entry, error) {
	if err := validateNames(ns, key); err != nil {
		return nil, err
	}
	e, err := s.index.GetEntry(ctx, ns, key)
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return nil, NotFound(ns, key)
	} else if err != nil {
		return nil, unavailable(err, "Cannot read metadata for key '%s' in namespace '%s': the database is unreachable", key, ns)
	}
	if e.Expired(s.now()) {
		return nil, kvflow.Errorf(kvflow.EEXPIRED, "The requested value for key '%s' in namespace '%s' has expired.", key, ns)
	}
	return e, nil
}

// missingObject is the error for a live entry whose value object is gone: a
// damaged store, not a missing key. It names the key, never a server path.
func missingObject(e *Entry, err error) error {
	return &kvflow.Error{Code: kvflow.EINTERNAL, Err: err, Message: fmt.Sprintf(
		"The value of key '%s' in namespace '%s' is missing from the object store although the key exists: the store is damaged (`kvflow doctor` lists such keys).",
		e.Key, e.Namespace)}
}

// NotFound is the error for a missing key.
func NotFound(ns, key string) error {
	return kvflow.Errorf(kvflow.ENOTFOUND, "No value found for key '%s' in namespace '%s'.", key, ns)
}

func (s *Store) read(ctx context.Context, e *Entry) (Value, error) {
	rc, err := s.bucket.Get(ctx, e.Object)
	if errors.Is(err, fs.ErrNotExist) {
		return Value{}, err
	} else if err != nil {
		return Value{}, unavailable(err, "Cannot read value for key '%s' in namespace '%s': the object store is unreachable", e.Key, e.Namespace)
	}
	defer rc.Close()
	data := make([]byte, e.Size+1) // one byte more, to notice a longer object
	n, err := io.ReadFull(rc, data)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	data = data[:n]
	if err != nil {
		return Value{}, unavailable(err, "Cannot read value for key '%s' in namespace '%s': the object store is unreachable", e.Key, e.Namespace)
	}
	if err := verify(e, int64(len(data)), sha256Hex(data)); err != nil {
		return Value{}, err
	}
	if e.Sensitive {
		if data, err = s.open(e, data); err != nil {
			return Value{}, err
		}
	}
	v, err := DecodeION(data, e.Type)
	if err != nil {
		return Value{}, kvflow.Errorf(kvflow.EINTERNAL, "Value for key '%s' in namespace '%s' cannot be decoded as %s: %v.", e.Key, e.Namespace, e.Type, err)
	}
	return v, nil
}

func verify(e *Entry, size int64, hash string) error {
	if size != e.Size || hash != e.Hash {
		return kvflow.Errorf(kvflow.EINTERNAL, "Value for key '%s' in namespace '%s' does not match its metadata (size %d, want %d).", e.Key, e.Namespace, size, e.Size)
	}
	return nil
}

// Open returns the metadata and a reader of the value's text. A STRING value
// streams with bounded memory; its size and hash are checked at the end, and a
// mismatch is returned by the last Read.
func (s *Store) Open(ctx context.Context, ns, key string) (*Entry, io.ReadCloser, error) {
	var e *Entry
	var rc io.ReadCloser
	for attempt := 0; ; attempt++ {
		var err error
		if e, err = s.live(ctx, ns, key); err != nil {
			return nil, nil, err
		}
		if e.Type != STRING || e.Sensitive {
			var v Value
			if v, err = s.read(ctx, e); err == nil {
				revealed(ctx, e, v)
				return e, io.NopCloser(strings.NewReader(v.Text())), nil
			}
		} else if rc, err = s.bucket.Get(ctx, e.Object); err == nil {
			break
		}
		switch {
		case errors.Is(err, fs.ErrNotExist) && attempt == 0:
			continue // replaced and collected since the metadata was read
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, missingObject(e, err)
		}
		return nil, nil, unavailable(err, "Cannot read value for key '%s' in namespace '%s': the object store is unreachable", key, ns)
	}
	v := &verifyingReader{r: rc, e: e, h: sha256.New()}
	return e, struct {
		io.Reader
		io.Closer
	}{NewIONStringReader(v), rc}, nil
}

// ListOptions select one page of keys.
type ListOptions struct {
	Prefix     string // only keys starting with Prefix
	Contains   string // only keys containing Contains anywhere
	IgnoreCase bool   // Contains matches regardless of case
	After      string // the page after this key (Page.Next of the previous page)
	Offset     int    // skip this many matching keys first (page numbers); After is cheaper
	Limit      int    // page size: 0 means DefaultListLimit; at most MaxListLimit
}

func (o ListOptions) query(now time.Time) ListQuery {
	return ListQuery{Prefix: o.Prefix, Contains: o.Contains, Fold: o.IgnoreCase, After: o.After, Offset: o.Offset, Limit: o.Limit, Now: now}
}

// Page is one page of entries; Next is "" on the last page.
type Page struct {
	Entries []Entry
	Next    string
}

// List returns live entries of ns sorted by key.
func (s *Store) List(ctx context.Context, ns string, o ListOptions) (Page, error) {
	if err := ValidateNamespace(ns); err != nil {
		return Page{}, err
	}
	switch {
	case o.Limit == 0:
		o.Limit = DefaultListLimit
	case o.Limit < 0 || o.Limit > MaxListLimit:
		return Page{}, kvflow.Errorf(kvflow.EINVALID, "Limit %d is out of range: expected 1 to %d.", o.Limit, MaxListLimit)
	}
	if o.Offset < 0 {
		return Page{}, kvflow.Errorf(kvflow.EINVALID, "Offset %d is out of range: expected 0 or more.", o.Offset)
	}
	q := o.query(s.now())
	q.Limit++
	es, err := s.index.ListEntries(ctx, ns, q)
	if err != nil {
		return Page{}, unavailable(err, "Cannot list keys in namespace '%s': the database is unreachable", ns)
	}
	p := Page{Entries: es}
	if len(es) > o.Limit {
		p.Entries, p.Next = es[:o.Limit], es[o.Limit-1].Key
	}
	return p, nil
}

// Count returns how many live entries of ns o selects (o.After, o.Offset
// and o.Limit aside).
func (s *Store) Count(ctx context.Context, ns string, o ListOptions) (int, error) {
	if err := ValidateNamespace(ns); err != nil {
		return 0, err
	}
	n, err := s.index.CountEntries(ctx, ns, o.query(s.now()))
	if err != nil {
		return 0, unavailable(err, "Cannot count keys in namespace '%s': the database is unreachable", ns)
	}
	return n, nil
}

// Keys returns every live key of ns that starts with prefix, in order.
func (s *Store) Keys(ctx context.Context, ns, prefix string) ([]string, error) {
	keys := []string{}
	o := ListOptions{Prefix: prefix, Limit: MaxListLimit}
	for {
		p, err := s.List(ctx, ns, o)
		if err != nil {
			return nil, err
		}
		for _, e := range p.Entries {
			keys = append(keys, e.Key)
		}
		if p.Next == "" {
			return keys, nil
		}
		o.After = p.Next
	}
}

// Delete removes ns/key and reports whether a live entry existed.
func (s *Store) Delete(ctx context.Context, ns, key string) (bool, error) {
	if err := validateNames(ns, key); err != nil {
		return false, err
	}
	e, err := s.index.DeleteEntry(ctx, ns, key, WriterFrom(ctx), s.now())
	if err != nil {
		return false, unavailable(err, "Cannot delete key '%s' in namespace '%s': the database is unreachable", key, ns)
	}
	if e != nil {
		s.wrote.fire()
	} else {
		ownWrite(ctx, ns, key, true)
	}
	return e != nil && !e.Expired(s.now()), nil
}

// DeleteAll deletes every live key of ns, each as Delete does (a tombstone
// version in its history), and returns the keys it deleted, in order. Keys
// written meanwhile may survive; on error, the keys deleted so far are returned.
func (s *Store) DeleteAll(ctx context.Context, ns string) ([]string, error) {
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	deleted := []string{}
	after := ""
	for {
		p, err := s.List(ctx, ns, ListOptions{After: after, Limit: MaxListLimit})
		if err != nil {
			return deleted, err
		}
		for _, e := range p.Entries {
			ok, err := s.Delete(ctx, ns, e.Key)
			if err != nil {
				return deleted, err
			}
			if ok {
				deleted = append(deleted, e.Key)
			}
		}
		if p.Next == "" {
			return deleted, nil
		}
		after = p.Next
	}
}

// DeleteIf deletes ns/key only if it is live at version (compare-and-delete):
// ENOTFOUND or EEXPIRED when there is no live entry, ECONFLICT naming the
// current version when it has another.
func (s *Store) DeleteIf(ctx context.Context, ns, key string, version int64) error {
	if err := validateNames(ns, key); err != nil {
		return err
	}
	e, err := s.index.DeleteEntryIf(ctx, ns, key, version, WriterFrom(ctx), s.now())
	if err != nil {
		return unavailable(err, "Cannot delete key '%s' in namespace '%s': the database is unreachable", key, ns)
	}
	if e != nil {
		return nil
	}
	cur, err := s.live(ctx, ns, key)
	if err != nil {
		return err
	}
	return kvflow.Errorf(kvflow.ECONFLICT, "Cannot delete key '%s' in namespace '%s': it is at version %d, not %d.", key, ns, cur.Version, version)
}

// Namespaces returns the namespaces holding live entries, with their counts.
func (s *Store) Namespaces(ctx context.Context) ([]NamespaceStat, error) {
	stats, err := s.index.Namespaces(ctx, s.now())
	if err != nil {
		return nil, unavailable(err, "Cannot list namespaces: the database is unreachable")
	}
	return stats, nil
}

// NamespacesWithEntries returns every namespace holding an entry, expired
// ones included, with its count.
func (s *Store) NamespacesWithEntries(ctx context.Context) ([]NamespaceStat, error) {
	// At the zero time every entry is live.
	stats, err := s.index.Namespaces(ctx, time.Time{})
	if err != nil {
		return nil, unavailable(err, "Cannot list namespaces: the database is unreachable")
	}
	return stats, nil
}

// PurgeOptions select entries to purge.
type PurgeOptions struct {
	Namespaces      []string // nil: all
	IncludeChildren bool     // also the namespaces below each one
	KeyGlob         string   // * and ? wildcards; "" matches every key
	All             bool     // also entries that have not expired
	BatchSize       int      // entries per transaction; 0: 1000
}

// Purge removes matching entries in batches and returns how many it removed
// in each namespace. Their objects are collected by CollectGarbage.
func (s *Store) Purge(ctx context.Context, o PurgeOptions) (map[string]int, error) {
	for _, ns := range o.Namespaces {
		if err := ValidateNamespace(ns); err != nil {
			return nil, err
		}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	q := PurgeQuery{Namespaces: o.Namespaces, IncludeChildren: o.IncludeChildren, KeyLike: globToLike(o.KeyGlob), ExpiredOnly: !o.All, Limit: o.BatchSize}
	purged := map[string]int{}
	for {
		q.Now = s.now()
		es, err := s.index.PurgeEntries(ctx, q)
		if err != nil {
			return purged, unavailable(err, "Cannot purge keys: the database is unreachable")
		}
		for _, e := range es {
			purged[e.Namespace]++
		}
		if len(es) < q.Limit {
			return purged, nil
		}
		if err := ctx.Err(); err != nil {
			return purged, err
		}
	}
}

// globToLike turns a key glob into a LIKE pattern with \ as the escape.
func globToLike(glob string) string {
	if glob == "" {
		return ""
	}
	var b strings.Builder
	for _, c := range glob {
		switch c {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// CollectGarbage deletes value objects nothing points to any more, from the
// database's records alone, so its work follows the garbage, not the bucket:
// the objects of purged versions (the garbage queue) and those of writes that
// never committed (intents older than grace, taken so that their writes can
// no longer commit). An object whose intent is younger than grace is never
// touched, whatever its Last-Modified. Objects no record names (written
// before intents existed, or by a process that crashed before recording one)
// are SweepOrphans's.
func (s *Store) CollectGarbage(ctx context.Context, grace time.Duration) (int, error) {
	cutoff := time.Now().Add(-grace)
	removed := 0
	for {
		names, err := s.index.Garbage(ctx, cutoff, gcBatch)
		if err != nil {
			return removed, unavailable(err, "Cannot collect garbage: the database is unreachable")
		}
		plain, packed := splitPacked(names)
		if err := s.deleteObjects(ctx, plain); err != nil {
			return removed, err
		}
		// A pack goes while its members' rows are still queued (so a failure
		// leaves them to the next run), unless another member is referenced.
		collected := make(map[string]bool, len(packed))
		for _, name := range packed {
			collected[name] = true
		}
		packs, err := s.packsOf(ctx, packed)
		if err != nil {
			return removed, err
		}
		n, kept, err := s.deleteUnused(ctx, packs, collected)
		if err != nil {
			return removed, err
		}
		if err := s.index.DropGarbage(ctx, names); err != nil {
			return removed, unavailable(err, "Cannot collect garbage: the database is unreachable")
		}
		// Look again at the packs kept: a collector running beside this one
		// may have dropped the other members' rows meanwhile, each seeing
		// the other's still queued.
		m, _, err := s.deleteUnused(ctx, kept, nil)
		if err != nil {
			return removed, err
		}
		removed += len(plain) + n + m
		if len(names) < gcBatch {
			break
		}
	}
	for {
		names, err := s.index.TakeStaleIntents(ctx, cutoff, gcBatch)
		if err != nil {
			return removed, unavailable(err, "Cannot collect garbage: the database is unreachable")
		}
		n, err := s.deleteUnreferenced(ctx, names) // an intent of an older release may have committed
		if removed += n; err != nil {
			return removed, err
		}
		if len(names) < gcBatch {
			return removed, nil
		}
	}
}

// gcBatch is how many objects garbage collection handles at a time.
const gcBatch = 500

// SweepOrphans lists the whole bucket and deletes the value objects older
// than grace that no entry, version, queued garbage or write intent names:
// what CollectGarbage cannot see. It costs a listing of every object: run it
// rarely (`kvflow kv gc --full`).
func (s *Store) SweepOrphans(ctx context.Context, grace time.Duration) (int, error) {
	cutoff := time.Now().Add(-grace)
	removed := 0
	var batch []string
	sweep := func() error {
		n, err := s.deleteUnreferenced(ctx, batch)
		removed += n
		batch = batch[:0]
		return err
	}
	err := s.bucket.Iter(ctx, "", func(name string, modified time.Time) error {
		if !IsValueObject(name) || !modified.Before(cutoff) {
			return nil
		}
		if batch = append(batch, name); len(batch) == gcBatch {
			return sweep()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = sweep()
	}
	if err != nil && kvflow.ErrorCode(err) == kvflow.EINTERNAL {
		err = unavailable(err, "Cannot collect garbage: the object store is unreachable")
	}
	return removed, err
}

// deleteUnreferenced deletes those of names the index does not reference,
// and the packs of member and pack names none of whose members it does.
func (s *Store) deleteUnreferenced(ctx context.Context, names []string) (int, error) {
	names, packed := splitPacked(names)
	members, err := s.packsOf(ctx, packed)
	if err != nil {
		return 0, err
	}
	packs, _, err := s.deleteUnused(ctx, members, nil)
	if err != nil {
		return packs, err
	}
	ref, err := s.referenced(ctx, names)
	if err != nil {
		return packs, err
	}
	var drop []string
	for _, name := range names {
		if !ref[name] {
			drop = append(drop, name)
		}
	}
	return packs + len(drop), s.deleteObjects(ctx, drop)
}

// splitPacked splits names into those of objects of their own and those of
// pack members and packs.
func splitPacked(names []string) (plain, packed []string) {
	for _, name := range names {
		if _, _, _, ok := PackMember(name); ok || strings.HasSuffix(name, ".pack") {
			packed = append(packed, name)
		} else {
			plain = append(plain, name)
		}
	}
	return plain, packed
}

// deleteObjects deletes objects, a few at a time.
func (s *Store) deleteObjects(ctx context.Context, names []string) error {
	errs := make(chan error, len(names))
	sem := make(chan struct{}, 8)
	for _, name := range names {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- s.bucket.Delete(ctx, name)
		}()
	}
	var first error
	for range names {
		if err := <-errs; err != nil && first == nil {
			first = unavailable(err, "Cannot collect garbage: the object store is unreachable")
		}
	}
	return first
}

// MissingObjects returns the live entries whose value object is not in the
// bucket: a damaged store (an object deleted by hand, a restored database
// with a newer bucket). It lists each namespace's entries, then its objects,
// so it costs a full scan; an entry rewritten meanwhile is not reported.
func (s *Store) MissingObjects(ctx context.Context) ([]Entry, error) {
	stats, err := s.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, st := range stats {
		var entries []Entry
		o := ListOptions{Limit: MaxListLimit}
		for {
			p, err := s.List(ctx, st.Namespace, o)
			if err != nil {
				return nil, err
			}
			entries = append(entries, p.Entries...)
			if p.Next == "" {
				break
			}
			o.After = p.Next
		}
		// Listed after the entries, so an object they name is still there
		// (replaced objects are kept for a grace period).
		present := map[string]bool{}
		prefix := strings.ReplaceAll(st.Namespace, ".", "/") + "/_kv/"
		err := s.bucket.Iter(ctx, prefix, func(name string, _ time.Time) error {
			present[name] = true
			return nil
		})
		if err != nil {
			return nil, unavailable(err, "Cannot list the objects of namespace '%s': the object store is unreachable", st.Namespace)
		}
		for _, e := range entries {
			if present[ObjectOf(e.Object)] {
				continue
			}
			// Check again: the entry may have been rewritten since it was listed.
			cur, err := s.index.GetEntry(ctx, e.Namespace, e.Key)
			if kvflow.ErrorCode(err) == kvflow.ENOTFOUND || (err == nil && cur.Object != e.Object) {
				continue
			} else if err != nil {
				return nil, unavailable(err, "Cannot read metadata for key '%s' in namespace '%s': the database is unreachable", e.Key, e.Namespace)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Ping checks both the database and the object store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.index.Ping(ctx); err != nil {
		return unavailable(err, "The database is unreachable")
	}
	if err := s.bucket.Ping(ctx); err != nil {
		return unavailable(err, "The object store is unreachable")
	}
	return nil
}

// IsValueObject reports whether an object name is one ObjectName makes:
// <namespace path>/_kv/<id>.ion, or <key>.ion.<id> from older releases, or
// a pack of values (<id>.pack). Other objects, such as execution files
// under _executions/, are not KV values (namespaces never start with _).
func IsValueObject(name string) bool {
	i := strings.LastIndex(name, "/_kv/")
	if i <= 0 || strings.HasPrefix(name, "_") {
		return false
	}
	file := name[i+len("/_kv/"):]
	return !strings.Contains(file, "/") && (strings.HasSuffix(file, ".ion") || strings.Contains(file, ".ion.") || strings.HasSuffix(file, ".pack"))
}

// ObjectName is a fresh name for a value of namespace ns:
// <namespace with . as />/_kv/<unique id>.ion. The metadata holds it, so
// nothing is read back from it; older releases put the key in it
// (<key>.ion.<id>), and such objects are read as any other.
func ObjectName(ns string) string {
	return strings.ReplaceAll(ns, ".", "/") + "/_kv/" + xid.New().String() + ".ion"
}

// unavailable explains a backend error: an EUNAVAILABLE one, or one that is not
// a kvflow error at all, gets the sentence in front; other kvflow errors and
// context errors pass through.
func unavailable(err error, format string, args ...any) error {
	var e *kvflow.Error
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	} else if errors.As(err, &e) && e.Code != kvflow.EUNAVAILABLE {
		return err
	}
	msg := fmt.Sprintf(format, args...)
	if errors.Is(err, ErrBusy) { // reached, but locked
		msg = strings.Replace(msg, "is unreachable", "is busy", 1)
	}
	return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: msg + ": " + err.Error(), Err: err}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// copyJSON deep-copies JSON containers so cached values cannot be changed by callers.
func copyJSON(x any) any {
	switch v := x.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = copyJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = copyJSON(e)
		}
		return l
	}
	return x
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// verifyingReader hashes what it reads and checks it against the entry at EOF.
type verifyingReader struct {
	r io.Reader
	e *Entry
	h hash.Hash
	n int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if verr := verify(v.e, v.n, hex.EncodeToString(v.h.Sum(nil))); verr != nil {
			return n, verr
		}
	}
	return n, err
}

// utf8Checker passes bytes through and fails on invalid UTF-8, carrying an
// incomplete rune across reads.
type utf8Checker struct {
	r     io.Reader
	carry []byte
}

func (u *utf8Checker) Read(p []byte) (int, error) {
	if len(p) < 8 {
		return 0, io.ErrShortBuffer
	}
	k := copy(p, u.carry)
	n, err := u.r.Read(p[k:])
	n += k
	u.carry = u.carry[:0]
	end := n
	if err == nil {
		// Hold back a trailing incomplete rune until more bytes arrive.
		for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
			if utf8.RuneStart(p[i]) {
				if !utf8.FullRune(p[i:n]) {
					end = i
				}
				break
			}
		}
		u.carry = append(u.carry, p[end:n]...)
	}
	if !utf8.Valid(p[:end]) {
		return 0, kvflow.Errorf(kvflow.EINVALID, "Value is not valid UTF-8 text.")
	}
	return end, err
}
