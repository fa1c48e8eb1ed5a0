package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/kvflow/kvflow"
)

// Entry is the metadata of one key. The value lives in the Bucket under Object;
// the database never holds it.
type Entry struct {
	Namespace   string
	Key         string
	Type        Type
	Object      string // object name in the Bucket, unique per write
	Version     int64  // 1 on create, +1 on each write
	Size        int64  // bytes of the ION object
	Hash        string // hex SHA-256 of the ION object
	Description string
	Created     time.Time
	Updated     time.Time
	Expires     *time.Time // nil: never
	Writer      string     // who wrote it (WithWriter); "" when unknown
	Sensitive   bool       // the object is sealed (encrypted) and the value masked wherever it could leak
}

// Expired reports whether the entry's TTL has passed at now.
func (e *Entry) Expired(now time.Time) bool {
	return e.Expires != nil && !now.Before(*e.Expires)
}

// Index holds entry metadata: the PostgreSQL and SQLite adapters implement it.
// Times are stored with microsecond precision.
type Index interface {
	// PutEntry makes e the entry of (e.Namespace, e.Key). It sets e.Version (1
	// for a new or expired entry, the previous version + 1 otherwise) and
	// e.Created (kept from a live previous entry). It returns ECONFLICT and
	// changes nothing when c.NoOverwrite is set and a live entry exists, or
	// when c.IfVersion is set and the live entry has another version (or none).
	// It consumes e.Object's write intent in the same statement or
	// transaction, and writes nothing but ErrIntentGone when garbage
	// collection took the intent first.
	PutEntry(ctx context.Context, e *Entry, c PutCondition) error

	// PutEntries writes every entry as PutEntry does with no condition, all in
	// one transaction: all of them or, on error, none. It sets each Version
	// and Created, and consumes every entry's intent as PutEntry does.
	PutEntries(ctx context.Context, entries []*Entry) error

	// PutEntriesCond writes entries in one transaction as PutEntry does with
	// PutCondition{NoOverwrite: noOverwrite}, and reports which it wrote: one
	// that meets a live entry is left out (and, with stopAtConflict, every
	// one after it). On error none is written. Every entry's intent is
	// consumed as PutEntry does.
	PutEntriesCond(ctx context.Context, entries []*Entry, noOverwrite, stopAtConflict bool) ([]bool, error)

	// GetEntry returns the entry, expired or not, or ENOTFOUND.
	GetEntry(ctx context.Context, ns, key string) (*Entry, error)

	// ListEntries returns live entries of ns in key order.
	ListEntries(ctx context.Context, ns string, q ListQuery) ([]Entry, error)
	// CountEntries returns how many live entries of ns q selects, ignoring
	// q.After, q.Offset and q.Limit.
	CountEntries(ctx context.Context, ns string, q ListQuery) (int, error)

	// DeleteEntry removes the entry, recording a tombstone version written
	// by writer at at. It returns the removed entry, or nil when there was none.
	DeleteEntry(ctx context.Context, ns, key, writer string, at time.Time) (*Entry, error)

	// DeleteEntryIf removes the entry only if it is live at now and at
	// version, recording a tombstone written by writer, and returns it; nil
	// when it was not.
	DeleteEntryIf(ctx context.Context, ns, key string, version int64, writer string, now time.Time) (*Entry, error)

	// PurgeEntries removes up to q.Limit matching entries in one transaction,
	// queues their objects as garbage and returns them.
	PurgeEntries(ctx context.Context, q PurgeQuery) ([]Entry, error)

	// History returns versions of ns/key newest first: below q.Before (0:
	// from the newest), at most q.Limit.
	History(ctx context.Context, ns, key string, q HistoryQuery) ([]Version, error)
	// GetVersion returns one version, or ENOTFOUND.
	GetVersion(ctx context.Context, ns, key string, version int64) (*Version, error)
	// PruneVersions removes up to q.Limit versions q selects in one
	// transaction, queues their objects as garbage and returns them.
	PruneVersions(ctx context.Context, q PruneQuery) ([]Version, error)
	// ChangesSince returns up to limit changes of ns with a seq above after,
	// in seq order: a consumer stores the last seq it handled, and may advance
	// it in the same transaction as what it does. EEXPIRED when changes just
	// after `after` were pruned.
	ChangesSince(ctx context.Context, ns string, after int64, limit int) ([]Change, error)
	// VersionAt returns the newest version of ns/key written at or before
	// at, or written by a writer starting with own (read-your-writes), or ENOTFOUND.
	VersionAt(ctx context.Context, ns, key string, at time.Time, own string) (*Version, error)
	// FeedHeads returns the last seq of each of nss's change feeds in one
	// read; a namespace with none is left out.
	FeedHeads(ctx context.Context, nss []string) (map[string]int64, error)
	// FeedSince returns the seq just before ns's first change made at or
	// after t; the head when there is none.
	FeedSince(ctx context.Context, ns string, t time.Time) (int64, error)
	// PruneChanges removes up to limit changes recorded before t.
	PruneChanges(ctx context.Context, before time.Time, limit int) (int, error)

	// Namespaces returns every namespace holding live entries, with counts.
	Namespaces(ctx context.Context, now time.Time) ([]NamespaceStat, error)

	// Garbage returns up to limit objects queued before olderThan.
	Garbage(ctx context.Context, olderThan time.Time, limit int) ([]string, error)
	// DropGarbage forgets queued objects once they are deleted.
	DropGarbage(ctx context.Context, objects []string) error
	// Referenced returns which of objects an entry or a version points to, the
	// garbage queue holds or a write intent names (any number of objects).
	Referenced(ctx context.Context, objects []string) (map[string]bool, error)

	// AddIntents records that objects are being written, at at: every write
	// records its object's intent before or while uploading it, and PutEntry,
	// PutEntries and PutEntriesCond consume the intents of their entries'
	// objects in their own transaction. Garbage collection takes stale
	// intents instead of listing the bucket.
	AddIntents(ctx context.Context, at time.Time, intents []Intent) error
	// RenewIntent moves a pending intent's start to at (a long stream's
	// heartbeat); false when it is gone (collected: the write cannot commit).
	RenewIntent(ctx context.Context, in Intent, at time.Time) (bool, error)
	// TakeStaleIntents removes up to limit intents started before olderThan
	// and returns their objects: writes that never committed, and now never
	// will, since their metadata write finds no intent.
	TakeStaleIntents(ctx context.Context, olderThan time.Time, limit int) ([]string, error)

	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
}

// Intent names an object a write is putting in the bucket.
type Intent struct {
	Namespace string
	Object    string
}

// ErrIntentGone is a metadata write whose object's intent garbage collection
// took as stale, so the object may be gone: nothing was written.
var ErrIntentGone = kvflow.Errorf(kvflow.EUNAVAILABLE, "Garbage collection removed the value object before its metadata was written; write it again.")

// ErrBusy is what an Index's error wraps when the database is reachable but
// another writer held its lock past the wait (SQLite's busy timeout).
var ErrBusy = errors.New("the database is busy")

// PutCondition guards a write.
type PutCondition struct {
	NoOverwrite bool  // only if no live entry exists
	IfVersion   int64 // only if the live entry has this version; 0: any
}

// ListQuery selects live entries of one namespace.
type ListQuery struct {
	Prefix   string    // keys starting with Prefix
	Contains string    // keys containing Contains anywhere; "" matches all
	Fold     bool      // Contains ignores case (keys are ASCII)
	After    string    // keys after this one (keyset pagination)
	Offset   int       // skip this many matching entries first
	Limit    int       // at most this many
	Now      time.Time // entries expired at Now are hidden
}

// PurgeQuery selects entries to purge.
type PurgeQuery struct {
	Namespaces      []string  // nil: every namespace
	IncludeChildren bool      // also a.b.* for each namespace a.b
	KeyLike         string    // SQL LIKE pattern with \ as escape; "" matches all
	ExpiredOnly     bool      // only entries expired at Now
	Now             time.Time //
	Limit           int       // batch size
}

// NamespaceStat is a namespace with its number of live keys.
type NamespaceStat struct {
	Namespace string
	Keys      int
}

// Bucket holds value objects: the S3 (MinIO) and local directory adapters
// implement it. A missing object is reported as an error matching
// fs.ErrNotExist. Names use / as separator and never start with one.
type Bucket interface {
	// Put stores r under name, replacing nothing in practice since names are
	// unique. size is -1 when unknown; memory use must not grow with it.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Get opens the object, or for a pack member's name (PackMember) that
	// byte range of its pack; the caller closes it.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// Iter calls fn for every object whose name starts with prefix.
	Iter(ctx context.Context, prefix string, fn func(name string, modified time.Time) error) error
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
}

// Preparer is a Bucket that can make ready, ahead of their writes, the
// objects of names reserved for writes (a local directory creates their
// files, which costs more than writing a small value into one).
type Preparer interface {
	Prepare(ctx context.Context, names []string)
}

// MaxJournaledObject is the largest value object a Journal takes.
const MaxJournaledObject = 256 << 10

// Journal is an embedded index's redo log (SQLite's, in sqldb): a bucket
// on local disk hands it the bytes of a small value object instead of
// syncing the object's file, and the index's next commit syncs them with
// its own record.
type Journal interface {
	// LogObject records an object's bytes, written to its file first;
	// false when the journal cannot take it and the caller syncs the file.
	LogObject(name string, data []byte) bool
}

// JournalBucket is a Bucket that can use a Journal.
type JournalBucket interface {
	Bucket
	UseJournal(j Journal)
	// SyncObjects syncs the files of logged objects (a journal checkpoint);
	// a missing one is no error.
	SyncObjects(ctx context.Context, names []string) error
	// RestoreObject writes a logged object whose file a crash lost or tore,
	// synced.
	RestoreObject(ctx context.Context, name string, data []byte) error
}
