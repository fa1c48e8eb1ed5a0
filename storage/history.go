package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kvflow/kvflow"
)

// History: every write and every delete of a key keeps a Version (a delete is
// a tombstone), and appends a Change to its namespace's feed, in the same
// statement as the entry. Versions keep their objects until retention purges
// them; the database never holds a value.

// ChangeKind says what a version or a change did.
type ChangeKind string

const (
	SET    ChangeKind = "SET"    // a write: Set, Increment, restore, import
	DELETE ChangeKind = "DELETE" // a delete or a purge (a tombstone)
	EXPIRE ChangeKind = "EXPIRE" // an expired entry purged (a tombstone)
)

// Version is one version of a key. A tombstone (Change DELETE or EXPIRE) has
// no Object and no value; its Updated is when the key was deleted.
type Version struct {
	Entry
	Change ChangeKind
}

// Tombstone reports whether the version records a deletion.
func (v *Version) Tombstone() bool { return v.Change != SET }

// Change is one row of a namespace's change feed. Seq is per namespace,
// starts at 1, has no gaps and follows commit order. It never holds a value.
type Change struct {
	Namespace string
	Seq       int64
	Key       string
	Change    ChangeKind
	Version   int64
	Type      Type
	Writer    string
	At        time.Time
}

// Who wrote a version. Writers are short strings, stored as they are.
const (
	WriterCLI    = "cli"
	WriterExpiry = "expiry" // an expired entry purged
	WriterPurge  = "purge"  // a purge of live entries
)

// ExecutionWriter names a task of an execution as a writer.
func ExecutionWriter(executionID, namespace, flowID, taskID string) string {
	return "execution:" + executionID + " flow:" + namespace + "." + flowID + " task:" + taskID
}

// TokenWriter names an API token as a writer.
func TokenWriter(name string) string { return "token:" + name }

type writerKey struct{}

// WithWriter returns a context whose writes and deletes record w as their writer.
func WithWriter(ctx context.Context, w string) context.Context {
	return context.WithValue(ctx, writerKey{}, w)
}

// WriterFrom returns the writer WithWriter put in ctx, or "".
func WriterFrom(ctx context.Context) string {
	w, _ := ctx.Value(writerKey{}).(string)
	return w
}

// Retention says which versions of a key are kept. The live version is
// always kept, whatever the rule.
type Retention struct {
	Versions int           // keep the newest Versions of each key; 0: DefaultVersions; <0: no count limit
	MaxAge   time.Duration // also drop versions written longer ago than this; 0: no age limit
}

// DefaultVersions is how many versions of a key are kept by default.
const DefaultVersions = 10

// DefaultChangeRetention is how long the change feed is kept by default.
const DefaultChangeRetention = 7 * 24 * time.Hour

// HistoryQuery selects a page of versions of a key, newest first.
type HistoryQuery struct {
	Before int64 // versions below this one; 0: from the newest
	Limit  int
}

// PruneQuery selects versions outside retention. A version is selected when
// it is not the live one and it is older than the newest Keep versions of its
// key (Keep > 0) or was written before Before (not zero).
type PruneQuery struct {
	Namespaces []string // these namespaces and their children; nil: all
	Exact      bool     // Namespaces without their children
	Exclude    []string // minus these and their children (another rule governs them)
	KeyLike    string   // SQL LIKE pattern with \ as escape; "" matches all
	Keep       int
	Before     time.Time
	KeepNewest bool // never the newest version of a key, even a tombstone (Kestra's rule)
	Limit      int
}

// HistoryOptions select a page of a key's versions.
type HistoryOptions struct {
	Before int64 // the page below this version (VersionPage.Next of the previous page)
	Limit  int   // 0: DefaultListLimit; at most MaxListLimit
}

// VersionPage is one page of versions, newest first; Next is 0 on the last page.
type VersionPage struct {
	Versions []Version
	Next     int64
}

// History returns the versions of ns/key kept by retention, newest first,
// tombstones included. ENOTFOUND for a key with none (never written, or
// every version purged).
func (s *Store) History(ctx context.Context, ns, key string, o HistoryOptions) (VersionPage, error) {
	if err := validateNames(ns, key); err != nil {
		return VersionPage{}, err
	}
	switch {
	case o.Limit == 0:
		o.Limit = DefaultListLimit
	case o.Limit < 0 || o.Limit > MaxListLimit:
		return VersionPage{}, kvflow.Errorf(kvflow.EINVALID, "Limit %d is out of range: expected 1 to %d.", o.Limit, MaxListLimit)
	}
	if o.Before < 0 {
		return VersionPage{}, kvflow.Errorf(kvflow.EINVALID, "Cursor %d is out of range: expected a version number.", o.Before)
	}
	vs, err := s.index.History(ctx, ns, key, HistoryQuery{Before: o.Before, Limit: o.Limit + 1})
	if err != nil {
		return VersionPage{}, unavailable(err, "Cannot read the history of key '%s' in namespace '%s': the database is unreachable", key, ns)
	}
	if len(vs) == 0 && o.Before == 0 {
		return VersionPage{}, kvflow.Errorf(kvflow.ENOTFOUND, "Key '%s' has no history in namespace '%s': it was never written, or all its versions were purged.", key, ns)
	}
	p := VersionPage{Versions: vs}
	if len(vs) > o.Limit {
		p.Versions, p.Next = vs[:o.Limit], vs[o.Limit-1].Version
	}
	return p, nil
}

// GetVersion returns one version of ns/key and its value, whether or not it
// is the live one (a version's TTL does not hide it from history). ENOTFOUND
// names a version purged by retention, a tombstone, or one that never was.
func (s *Store) GetVersion(ctx context.Context, ns, key string, version int64) (*Version, Value, error) {
	v, err := s.version(ctx, ns, key, version)
	if err != nil {
		return nil, Value{}, err
	}
	if s.cache != nil {
		if c, ok := s.cache.Get(v.Object); ok {
			revealed(ctx, &v.Entry, c)
			return v, Value{c.Type, copyJSON(c.V)}, nil
		}
	}
	if v.Size > MaxValueSize {
		return nil, Value{}, kvflow.Errorf(kvflow.ETOOLARGE, "Version %d of key '%s' in namespace '%s' is %d bytes; the limit for a whole value is %d bytes.", version, key, ns, v.Size, MaxValueSize)
	}
	val, err := s.read(ctx, &v.Entry)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Value{}, purged(ns, key, version)
	} else if err != nil {
		return nil, Value{}, err
	}
	if s.cache != nil {
		s.cache.Add(v.Object, Value{val.Type, copyJSON(val.V)})
	}
	revealed(ctx, &v.Entry, val)
	return v, val, nil
}

// version returns the metadata of a version that holds a value.
func (s *Store) version(ctx context.Context, ns, key string, version int64) (*Version, error) {
	if err := validateNames(ns, key); err != nil {
		return nil, err
	}
	if version < 1 {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Version %d of key '%s' in namespace '%s' is invalid: versions start at 1.", version, key, ns)
	}
	v, err := s.index.GetVersion(ctx, ns, key, version)
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		newest, herr := s.index.History(ctx, ns, key, HistoryQuery{Limit: 1})
		if herr == nil && len(newest) == 1 && version < newest[0].Version {
			return nil, purged(ns, key, version)
		}
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Key '%s' in namespace '%s' has no version %d.", key, ns, version)
	} else if err != nil {
		return nil, unavailable(err, "Cannot read version %d of key '%s' in namespace '%s': the database is unreachable", version, key, ns)
	}
	if v.Tombstone() {
		return nil, kvflow.Errorf(kvflow.ENOTFOUND, "Version %d of key '%s' in namespace '%s' is a deletion (%s); it holds no value.", version, key, ns, v.Change)
	}
	return v, nil
}

func purged(ns, key string, version int64) error {
	return kvflow.Errorf(kvflow.ENOTFOUND, "Version %d of key '%s' in namespace '%s' was purged by the history retention.", version, key, ns)
}

// Restore writes a new version of ns/key holding version's value, type and
// description (no TTL). o.IfVersion guards it as it guards Set; for a deleted
// key it may name the tombstone, and then the restore happens only if no one
// has re-created the key meanwhile.
func (s *Store) Restore(ctx context.Context, ns, key string, version int64, o SetOptions) (*Entry, error) {
	v, err := s.version(ctx, ns, key, version)
	if err != nil {
		return nil, err
	}
	if o.IfVersion > 0 {
		if _, err := s.live(ctx, ns, key); kvflow.ErrorCode(err) == kvflow.ENOTFOUND || kvflow.ErrorCode(err) == kvflow.EEXPIRED {
			newest, herr := s.index.History(ctx, ns, key, HistoryQuery{Limit: 1})
			if herr == nil && len(newest) == 1 && newest[0].Tombstone() && newest[0].Version == o.IfVersion {
				o.IfVersion, o.NoOverwrite = 0, true
			}
		}
	}
	o.TTL, o.Description, o.Sensitive = 0, v.Description, v.Sensitive
	if v.Size > MaxValueSize && !v.Sensitive { // only a STRING can be that large: stream it
		rc, err := s.bucket.Get(ctx, v.Object)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, purged(ns, key, version)
		} else if err != nil {
			return nil, unavailable(err, "Cannot read version %d of key '%s' in namespace '%s': the object store is unreachable", version, key, ns)
		}
		defer rc.Close()
		return s.put(ctx, ns, key, v.Type, &verifyingReader{r: rc, e: &v.Entry, h: sha256.New()}, -1, "", o)
	}
	_, val, err := s.GetVersion(ctx, ns, key, version)
	if err != nil {
		return nil, err
	}
	e, err := s.Set(ctx, ns, key, val, o)
	if kvflow.ErrorCode(err) == kvflow.ECONFLICT && o.NoOverwrite {
		return nil, kvflow.Errorf(kvflow.ECONFLICT, "Cannot restore key '%s' in namespace '%s': it was re-created since it was deleted.", key, ns)
	}
	return e, err
}

// Changes returns up to limit changes of ns after seq after, in order.
// EEXPIRED means changes after it are no longer kept: resynchronise.
func (s *Store) Changes(ctx context.Context, ns string, after int64, limit int) ([]Change, error) {
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, kvflow.Errorf(kvflow.EINVALID, "Limit %d is out of range: expected 1 to %d.", limit, MaxListLimit)
	}
	if after < 0 {
		return nil, kvflow.Errorf(kvflow.EINVALID, "Sequence %d is out of range: expected 0 or more.", after)
	}
	cs, err := s.index.ChangesSince(ctx, ns, after, limit)
	if err != nil {
		return nil, unavailable(err, "Cannot read the changes of namespace '%s': the database is unreachable", ns)
	}
	return cs, nil
}

// FeedHead returns the last seq of ns's change feed: watching from it
// yields only changes made from now on.
func (s *Store) FeedHead(ctx context.Context, ns string) (int64, error) {
	if err := ValidateNamespace(ns); err != nil {
		return 0, err
	}
	heads, err := s.index.FeedHeads(ctx, []string{ns})
	if err != nil {
		return 0, unavailable(err, "Cannot read the changes of namespace '%s': the database is unreachable", ns)
	}
	return heads[ns], nil
}

// CheckSince refuses a since past the end of ns's changes, as etcd refuses
// a future revision: a reader from there would skip the changes up to it.
func (s *Store) CheckSince(ctx context.Context, ns string, since int64) error {
	head, err := s.FeedHead(ctx, ns)
	if err == nil && since > head {
		err = kvflow.Errorf(kvflow.EINVALID, "Parameter 'since' is %d, past the last change of namespace '%s' (%d): expected a seq this namespace's feed has reached.", since, ns, head)
	}
	return err
}

// FeedHeads returns the last seq of each of nss's change feeds, read at
// once; a namespace without changes is left out (its head reads as 0). A
// reader of many feeds then reads only those that moved.
func (s *Store) FeedHeads(ctx context.Context, nss []string) (map[string]int64, error) {
	for _, ns := range nss {
		if err := ValidateNamespace(ns); err != nil {
			return nil, err
		}
	}
	if len(nss) == 0 {
		return map[string]int64{}, nil
	}
	heads, err := s.index.FeedHeads(ctx, nss)
	if err != nil {
		return nil, unavailable(err, "Cannot read the change feeds of %d namespace(s): the database is unreachable", len(nss))
	}
	return heads, nil
}

// FeedSince returns the seq just before ns's first change made at or after
// t (the head when none is): a reader starting there sees every change
// made from t on.
func (s *Store) FeedSince(ctx context.Context, ns string, t time.Time) (int64, error) {
	if err := ValidateNamespace(ns); err != nil {
		return 0, err
	}
	seq, err := s.index.FeedSince(ctx, ns, t)
	if err != nil {
		return 0, unavailable(err, "Cannot read the changes of namespace '%s': the database is unreachable", ns)
	}
	return seq, nil
}

// Wrote returns a channel closed at the next write or delete this Store
// makes. Watchers wait on it, and poll as well for other processes' writes.
func (s *Store) Wrote() <-chan struct{} { return s.wrote.wait() }

// signal is a broadcast: wait returns a channel that fire closes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// PurgeVersionsOptions select old versions to purge, as Kestra's PurgeKV
// behavior {type: version} does: the newest version of a key always stays.
type PurgeVersionsOptions struct {
	Namespaces []string  // exactly these
	KeyGlob    string    // * and ? wildcards; "" matches every key
	KeepAmount int       // keep the newest KeepAmount versions of each key (at least 1)
	Before     time.Time // or: purge versions written before this instant
	BatchSize  int       // versions per transaction; 0: 1000
}

// PurgeVersions removes old versions in batches and returns how many it
// removed in each namespace. Their objects are collected by CollectGarbage.
func (s *Store) PurgeVersions(ctx context.Context, o PurgeVersionsOptions) (map[string]int, error) {
	for _, ns := range o.Namespaces {
		if err := ValidateNamespace(ns); err != nil {
			return nil, err
		}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	q := PruneQuery{Namespaces: o.Namespaces, Exact: true, KeyLike: globToLike(o.KeyGlob), Before: o.Before, KeepNewest: true, Limit: o.BatchSize}
	if o.Before.IsZero() {
		q.Keep = max(o.KeepAmount, 1)
	}
	purged := map[string]int{}
	if len(o.Namespaces) == 0 {
		return purged, nil
	}
	for {
		vs, err := s.index.PruneVersions(ctx, q)
		if err != nil {
			return purged, unavailable(err, "Cannot purge old versions: the database is unreachable")
		}
		for _, v := range vs {
			purged[v.Namespace]++
		}
		if len(vs) < q.Limit {
			return purged, nil
		}
		if err := ctx.Err(); err != nil {
			return purged, err
		}
	}
}

// Snapshot pins the reads of one execution to the store as it was at At:
// Get returns the newest version written at or before At, or written by
// Execution itself (read-your-writes). Writes are not affected.
type Snapshot struct {
	At        time.Time
	Execution string // the execution's id, as in ExecutionWriter

	// deleted holds the keys (ns, NUL, key) this snapshot's deletes found
	// deleted already, which no write of its own has brought back: they
	// left no version to read back.
	deleted *sync.Map
}

type snapshotKey struct{}

// WithSnapshot returns a context whose Get calls read at snap.
func WithSnapshot(ctx context.Context, snap Snapshot) context.Context {
	if snap.deleted == nil {
		snap.deleted = &sync.Map{}
	}
	return context.WithValue(ctx, snapshotKey{}, snap)
}

// ownWrite records, under a snapshot, a write of ns/key that left a version
// (gone false) or a delete that found it deleted already (gone true).
func ownWrite(ctx context.Context, ns, key string, gone bool) {
	if snap, ok := SnapshotFrom(ctx); ok && snap.deleted != nil {
		if gone {
			snap.deleted.Store(ns+"\x00"+key, true)
		} else {
			snap.deleted.Delete(ns + "\x00" + key)
		}
	}
}

// SnapshotFrom returns the snapshot WithSnapshot put in ctx.
func SnapshotFrom(ctx context.Context) (Snapshot, bool) {
	snap, ok := ctx.Value(snapshotKey{}).(Snapshot)
	return snap, ok
}

func (s *Store) getAt(ctx context.Context, ns, key string, snap Snapshot) (*Entry, Value, error) {
	if err := validateNames(ns, key); err != nil {
		return nil, Value{}, err
	}
	if snap.deleted != nil {
		if _, gone := snap.deleted.Load(ns + "\x00" + key); gone {
			return nil, Value{}, NotFound(ns, key)
		}
	}
	own := ""
	if snap.Execution != "" {
		own = "execution:" + snap.Execution + " "
	}
	v, err := s.index.VersionAt(ctx, ns, key, snap.At, own)
	if kvflow.ErrorCode(err) == kvflow.ENOTFOUND {
		return nil, Value{}, NotFound(ns, key)
	} else if err != nil {
		return nil, Value{}, unavailable(err, "Cannot read metadata for key '%s' in namespace '%s': the database is unreachable", key, ns)
	}
	if v.Tombstone() {
		return nil, Value{}, NotFound(ns, key)
	}
	at := snap.At
	if v.Updated.After(at) { // the execution's own write: expiry counts from now
		at = s.now()
	}
	if v.Expired(at) {
		return nil, Value{}, kvflow.Errorf(kvflow.EEXPIRED, "The requested value for key '%s' in namespace '%s' has expired.", key, ns)
	}
	if s.cache != nil {
		if c, ok := s.cache.Get(v.Object); ok {
			revealed(ctx, &v.Entry, c)
			return &v.Entry, Value{c.Type, copyJSON(c.V)}, nil
		}
	}
	if v.Size > MaxValueSize {
		return nil, Value{}, kvflow.Errorf(kvflow.ETOOLARGE, "Value for key '%s' in namespace '%s' is %d bytes; read it as a stream.", key, ns, v.Size)
	}
	val, err := s.read(ctx, &v.Entry)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Value{}, kvflow.Errorf(kvflow.ENOTFOUND, "Version %d of key '%s' in namespace '%s', the one this execution's snapshot sees, was purged by the history retention.", v.Version, key, ns)
	} else if err != nil {
		return nil, Value{}, err
	}
	if s.cache != nil {
		s.cache.Add(v.Object, Value{val.Type, copyJSON(val.V)})
	}
	revealed(ctx, &v.Entry, val)
	return &v.Entry, val, nil
}

// HistoryPolicy is the retention of versions and of the change feed.
type HistoryPolicy struct {
	Default    Retention            // every namespace without its own rule
	Namespaces map[string]Retention // a namespace and its children; the nearest rule wins
	Changes    time.Duration        // how long the change feed is kept; 0: DefaultChangeRetention
}

// PruneHistory purges, in batches of batch, versions outside retention (their
// objects are queued as garbage in the same transaction) and changes older
// than the feed's retention. It returns how many of each it removed.
func (s *Store) PruneHistory(ctx context.Context, p HistoryPolicy, batch int) (versions, changes int, err error) {
	if batch <= 0 {
		batch = 1000
	}
	now := s.now()
	rules := make([]string, 0, len(p.Namespaces))
	for ns := range p.Namespaces {
		rules = append(rules, ns)
	}
	sort.Strings(rules)
	run := func(q PruneQuery, r Retention) error {
		switch {
		case r.Versions == 0:
			q.Keep = DefaultVersions
		case r.Versions > 0:
			q.Keep = r.Versions
		}
		if r.MaxAge > 0 {
			q.Before = now.Add(-r.MaxAge)
		}
		if q.Keep == 0 && q.Before.IsZero() {
			return nil
		}
		q.Limit = batch
		for {
			vs, err := s.index.PruneVersions(ctx, q)
			if err != nil {
				return unavailable(err, "Cannot purge old versions: the database is unreachable")
			}
			versions += len(vs)
			if len(vs) < batch {
				return ctx.Err()
			}
		}
	}
	if err := run(PruneQuery{Exclude: rules}, p.Default); err != nil {
		return versions, changes, err
	}
	for _, ns := range rules {
		var deeper []string
		for _, other := range rules {
			if strings.HasPrefix(other, ns+".") {
				deeper = append(deeper, other)
			}
		}
		if err := run(PruneQuery{Namespaces: []string{ns}, Exclude: deeper}, p.Namespaces[ns]); err != nil {
			return versions, changes, err
		}
	}
	keep := p.Changes
	if keep <= 0 {
		keep = DefaultChangeRetention
	}
	for {
		n, err := s.index.PruneChanges(ctx, now.Add(-keep), batch)
		changes += n
		if err != nil {
			return versions, changes, unavailable(err, "Cannot purge old changes: the database is unreachable")
		}
		if n < batch {
			return versions, changes, nil
		}
	}
}
