package sqldb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// The journal makes SQLite's group commit durable with one sync per batch,
// as etcd's WAL does: the statements a batch ran, and the bytes of the small
// value objects it points to, are appended to a redo log beside the database
// file (kvflow.db-redo) and synced before the batch commits; the commit
// itself and the objects' files are not synced then. A checkpoint syncs the
// objects' files and a commit, and starts the log again. After a crash,
// Open replays the batches SQLite lost, in order, on the state they first
// ran on (what SQLite kept is a prefix of its commits, and every commit not
// synced is a batch), and AttachBucket rewrites the logged objects that
// rows point to. kv_journal.commits counts the group commits of every
// process on the database and each batch logs the count it ran on, so a
// batch that another process's commits came after, which therefore never
// committed, is dropped instead.
//
// The file: a header (magic, epoch) then records [len u32][crc u32][kind u8]
// [body], each record's CRC covering the epoch, so records of an earlier
// epoch, left behind a shorter new one, end the log.

const (
	journalMagic  = "KVFJRNL1"
	journalHeader = 16
	// journalCap is the log's preallocated size.
	journalCap = 64 << 20

	recObject = 'O'
	recBatch  = 'B'
	recAbort  = 'A'
)

// journalCheckpoint is how full a batch may find the log before it
// checkpoints first (a variable for tests).
var journalCheckpoint int64 = 8 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type journal struct {
	path string
	lock *os.File // flocked while this process holds the journal

	mu      sync.Mutex // guards what follows
	f       *os.File
	epoch   uint64
	off     int64    // the end of the log, buf included
	buf     []byte   // object records not yet written
	objects []string // names logged this epoch, for the checkpoint's syncs

	lsn uint64 // the last batch's number; the committer's alone

	// Read at open, until AttachBucket has seen them.
	pending []loggedObject
	bucket  storage.JournalBucket
}

type loggedObject struct {
	name string
	data []byte
}

type loggedBatch struct {
	lsn   uint64
	at    int64 // kvflow_now_us() while it ran
	stmts []stmtRec
	// base is kv_journal.commits when it ran: the group commits of every
	// process on the database before it (logs of earlier releases lack it).
	base    uint64
	hasBase bool
}

// openJournal opens or creates the log and returns what its epoch holds.
// It reads records one by one, so a clean log costs a read of its header
// and a process that writes nothing (a one-shot read) changes nothing.
func openJournal(path string) (*journal, []loggedBatch, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open journal: %w", err)
	}
	j := &journal{path: path, f: f}
	var head [journalHeader]byte
	if _, err := f.ReadAt(head[:], 0); err != nil || string(head[:8]) != journalMagic {
		if err != nil && !errors.Is(err, io.EOF) {
			f.Close()
			return nil, nil, fmt.Errorf("read journal %s: %w", path, err)
		}
		return j, nil, nil // made at the first write (append)
	}
	j.epoch = binary.LittleEndian.Uint64(head[8:])
	j.off = journalHeader
	r := bufio.NewReaderSize(io.NewSectionReader(f, journalHeader, journalCap), 64<<10)
	var batches []loggedBatch
	aborted := map[uint64]bool{}
	for {
		kind, body, err := j.record(r)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("read journal %s: %w", path, err)
		}
		if body == nil {
			break
		}
		j.off += int64(9 + len(body))
		switch kind {
		case recObject:
			name, rest, ok := cutString(body)
			if !ok {
				f.Close()
				return nil, nil, fmt.Errorf("journal %s: bad object record at %d", path, j.off)
			}
			j.pending = append(j.pending, loggedObject{name: name, data: rest})
			j.objects = append(j.objects, name)
		case recBatch:
			b, err := decodeBatch(body)
			if err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("journal %s: %w", path, err)
			}
			batches = append(batches, b)
			j.lsn = max(j.lsn, b.lsn)
		case recAbort:
			if len(body) == 8 {
				aborted[binary.LittleEndian.Uint64(body)] = true
			}
		}
	}
	kept := batches[:0]
	for _, b := range batches {
		if !aborted[b.lsn] {
			kept = append(kept, b)
		}
	}
	return j, kept, nil
}

// record reads the next record of the current epoch; a nil body is the end
// of the log (a short, torn or earlier epoch's record).
func (j *journal) record(r *bufio.Reader) (kind byte, body []byte, err error) {
	var head [9]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, endOfLog(err)
	}
	size := int64(binary.LittleEndian.Uint32(head[:]))
	if size == 0 || size > journalCap-j.off-9 {
		return 0, nil, nil
	}
	body = make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, endOfLog(err)
	}
	if binary.LittleEndian.Uint32(head[4:]) != j.crc(head[8], body) {
		return 0, nil, nil
	}
	return head[8], body, nil
}

func endOfLog(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

func (j *journal) crc(kind byte, body []byte) uint32 {
	var head [9]byte
	binary.LittleEndian.PutUint64(head[:], j.epoch)
	head[8] = kind
	return crc32.Update(crc32.Checksum(head[:], crcTable), crcTable, body)
}

// reset starts epoch in an empty, preallocated log.
func (j *journal) reset(epoch uint64) error {
	var head [journalHeader]byte
	copy(head[:], journalMagic)
	binary.LittleEndian.PutUint64(head[8:], epoch)
	if _, err := j.f.WriteAt(head[:], 0); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := preallocate(j.f, journalCap); err != nil {
		return fmt.Errorf("allocate journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	j.epoch, j.off, j.buf, j.objects, j.pending = epoch, journalHeader, j.buf[:0], nil, nil
	return nil
}

// append adds a record at the end of the log (unsynced); false when it
// would pass limit. An object's record waits in memory for the next record
// of another kind and is written with it in one call: a batch's record
// always follows the records of the objects logged before it.
func (j *journal) append(kind byte, body []byte, limit int64) (bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.off == 0 {
		if err := j.reset(1); err != nil {
			return false, err
		}
	}
	size := int64(9 + len(body))
	if j.off+size > limit {
		return false, nil
	}
	start := len(j.buf)
	j.buf = binary.LittleEndian.AppendUint32(j.buf, uint32(len(body)))
	j.buf = binary.LittleEndian.AppendUint32(j.buf, j.crc(kind, body))
	j.buf = append(append(j.buf, kind), body...)
	j.off += size
	if kind == recObject {
		name, _, _ := cutString(body)
		j.objects = append(j.objects, name)
		return true, nil
	}
	if _, err := j.f.WriteAt(j.buf, j.off-int64(len(j.buf))); err != nil {
		j.buf, j.off = j.buf[:start], j.off-size // the objects' records wait for the next batch
		return false, fmt.Errorf("write journal: %w", err)
	}
	j.buf = j.buf[:0]
	if cap(j.buf) > 1<<20 {
		j.buf = nil
	}
	return true, nil
}

// LogObject implements storage.Journal.
func (j *journal) LogObject(name string, data []byte) bool {
	if len(data) > storage.MaxJournaledObject {
		return false
	}
	body := binary.AppendUvarint(make([]byte, 0, len(name)+len(data)+binary.MaxVarintLen64), uint64(len(name)))
	body = append(append(body, name...), data...)
	ok, err := j.append(recObject, body, journalCap)
	return ok && err == nil
}

// logBatch appends a batch that ran on base commits and syncs the log:
// from then on the batch is durable, whatever becomes of its commit.
func (j *journal) logBatch(lsn uint64, at int64, base uint64, stmts []stmtRec) error {
	body := binary.AppendUvarint(encodeBatch(lsn, at, stmts), base) // last: earlier releases read past it
	ok, err := j.append(recBatch, body, journalCap)
	if err == nil && !ok {
		err = fmt.Errorf("journal %s is full", j.path)
	}
	if err == nil {
		err = datasync(j.f)
	}
	return err
}

// logAbort records that batch lsn did not commit (best effort: its
// statements, if replayed, are the ones its callers were told failed).
func (j *journal) logAbort(lsn uint64) {
	ok, _ := j.append(recAbort, binary.LittleEndian.AppendUint64(nil, lsn), journalCap)
	if ok {
		datasync(j.f)
	}
}

// used reports whether the log holds records.
func (j *journal) used() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.off > journalHeader
}

// full reports whether the next batch should checkpoint first.
func (j *journal) full() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.off > journalCheckpoint
}

// checkpoint makes what the log holds durable elsewhere and empties it:
// the logged objects' files synced by the bucket, then a synced commit
// (commit, on the committer's connection) that carries SQLite's earlier
// ones. Objects are not logged meanwhile.
func (j *journal) checkpoint(ctx context.Context, commit func(context.Context) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.pending) > 0 {
		// Objects a crash may have lost, not yet restored (no AttachBucket):
		// the log keeps them for an open that restores them.
		return fmt.Errorf("journal %s holds %d value objects not yet restored: open the store with its bucket", j.path, len(j.pending))
	}
	if len(j.objects) > 0 && j.bucket != nil {
		if err := j.bucket.SyncObjects(ctx, j.objects); err != nil {
			return err
		}
	}
	if err := commit(ctx); err != nil {
		return err
	}
	return j.reset(j.epoch + 1)
}

// Batch encoding: lsn, then per statement the query and its arguments, each
// argument a kind byte and its value.
const (
	argNil = iota
	argInt
	argFloat
	argBool
	argString
	argBytes
	argTime
)

func encodeBatch(lsn uint64, at int64, stmts []stmtRec) []byte {
	b := binary.AppendVarint(binary.AppendUvarint(nil, lsn), at)
	n := 0
	for _, s := range stmts {
		if s.query != "" {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, s := range stmts {
		if s.query == "" {
			continue
		}
		b = appendString(b, s.query)
		b = binary.AppendUvarint(b, uint64(len(s.args)))
		for _, a := range s.args {
			switch v := a.(type) {
			case nil:
				b = append(b, argNil)
			case int64:
				b = binary.AppendVarint(append(b, argInt), v)
			case float64:
				b = binary.LittleEndian.AppendUint64(append(b, argFloat), math.Float64bits(v))
			case bool:
				c := byte(0)
				if v {
					c = 1
				}
				b = append(b, argBool, c)
			case string:
				b = appendString(append(b, argString), v)
			case []byte:
				b = appendString(append(b, argBytes), string(v))
			case time.Time:
				t, _ := v.MarshalBinary()
				b = appendString(append(b, argTime), string(t))
			default: // database/sql hands drivers only the types above
				panic(fmt.Sprintf("journal: argument of type %T", a))
			}
		}
	}
	return b
}

var errBadBatch = errors.New("bad batch record")

func decodeBatch(b []byte) (loggedBatch, error) {
	r := bytes.NewReader(b)
	var out loggedBatch
	var err error
	uv := func() uint64 {
		v, e := binary.ReadUvarint(r)
		if e != nil && err == nil {
			err = errBadBatch
		}
		return v
	}
	str := func() string {
		n := uv()
		if err != nil || n > uint64(r.Len()) {
			err = errBadBatch
			return ""
		}
		s := make([]byte, n)
		io.ReadFull(r, s)
		return string(s)
	}
	out.lsn = uv()
	at, e := binary.ReadVarint(r)
	if e != nil {
		return out, errBadBatch
	}
	out.at = at
	n := uv()
	for i := uint64(0); i < n && err == nil; i++ {
		s := stmtRec{query: str()}
		nargs := uv()
		for k := uint64(0); k < nargs && err == nil; k++ {
			kind, e := r.ReadByte()
			if e != nil {
				return out, errBadBatch
			}
			switch kind {
			case argNil:
				s.args = append(s.args, nil)
			case argInt:
				v, e := binary.ReadVarint(r)
				if e != nil {
					return out, errBadBatch
				}
				s.args = append(s.args, v)
			case argFloat:
				var u [8]byte
				if _, e := io.ReadFull(r, u[:]); e != nil {
					return out, errBadBatch
				}
				s.args = append(s.args, math.Float64frombits(binary.LittleEndian.Uint64(u[:])))
			case argBool:
				c, e := r.ReadByte()
				if e != nil {
					return out, errBadBatch
				}
				s.args = append(s.args, c == 1)
			case argString:
				s.args = append(s.args, str())
			case argBytes:
				s.args = append(s.args, []byte(str()))
			case argTime:
				var t time.Time
				if e := t.UnmarshalBinary([]byte(str())); e != nil {
					return out, errBadBatch
				}
				s.args = append(s.args, t)
			default:
				return out, errBadBatch
			}
		}
		out.stmts = append(out.stmts, s)
	}
	if err == nil && r.Len() > 0 {
		if out.base, err = binary.ReadUvarint(r); err != nil {
			return out, errBadBatch
		}
		out.hasBase = true
	}
	return out, err
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func cutString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

// replay runs, in order, the logged batches SQLite does not hold, each with
// the journal's position in one synced transaction.
func (db *DB) replay(ctx context.Context, batches []loggedBatch) error {
	var at struct {
		Applied uint64 `db:"lsn"`
		Commits uint64 `db:"commits"`
	}
	if err := db.X.GetContext(ctx, &at, `SELECT lsn, commits FROM kv_journal`); err != nil {
		return db.Err(err)
	}
	applied, commits := at.Applied, at.Commits
	db.journal.lsn = max(db.journal.lsn, applied)
	for _, b := range batches {
		if b.lsn <= applied {
			continue
		}
		if b.hasBase && b.base != commits {
			// Another process committed on the database after the state
			// this batch ran on: had the batch committed, its commit would
			// have come first and be kept. So it never did, and no caller was
			// told it succeeded (the holder died between the log's sync
			// and the commit). Replaying it would land it after writes
			// acknowledged since; it is dropped.
			continue
		}
		unstamp := stampAt(b.at)
		err := db.tx(ctx, func(tx *sqlx.Tx) error {
			for i, s := range b.stmts {
				args := make([]any, len(s.args))
				for k, a := range s.args {
					args[k] = a
				}
				if _, err := tx.ExecContext(ctx, s.query, args...); err != nil {
					return fmt.Errorf("statement %d: %w", i+1, err)
				}
			}
			_, err := tx.ExecContext(ctx, `UPDATE kv_journal SET lsn = ?, commits = commits + 1`, b.lsn)
			return err
		})
		unstamp()
		if err != nil {
			return kvflow.Errorf(kvflow.EINTERNAL, "Cannot replay batch %d of journal %s into the database: %v.", b.lsn, db.journal.path, err)
		}
		commits++
	}
	return nil
}

// AttachBucket gives the journal the bucket whose small value objects it
// logs: objects logged before a crash that rows point to are rewritten
// (RestoreObject), then a checkpoint empties the log. A no-op on PostgreSQL.
func (db *DB) AttachBucket(ctx context.Context, b storage.JournalBucket) error {
	j := db.journal
	if j == nil {
		return nil
	}
	j.mu.Lock()
	j.bucket = b
	pending := j.pending
	j.mu.Unlock()
	if len(pending) > 0 {
		names := make([]string, len(pending))
		for i, o := range pending {
			names[i] = o.name
		}
		ref, err := db.Referenced(ctx, names)
		if err != nil {
			return err
		}
		for _, o := range pending {
			if ref[o.name] {
				if err := b.RestoreObject(ctx, o.name, o.data); err != nil {
					return err // the log keeps them: a checkpoint refuses to empty it
				}
			}
		}
		j.mu.Lock()
		j.pending = nil
		j.mu.Unlock()
	}
	b.UseJournal(j)
	if !j.used() {
		return nil
	}
	return db.batch.checkpointNow(ctx)
}

// openJournal takes the database's journal, replaying what SQLite lost of
// it. One process at a time holds it; another process on the same file (a
// one-shot command beside a server) commits with a sync of its own, as
// with no journal.
func (db *DB) openJournal(ctx context.Context) error {
	path := db.addr + "-redo"
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot open the journal lock %s: %v.", path+".lock", err)
	}
	if ok, err := tryLock(lock); !ok {
		lock.Close()
		if err != nil {
			return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot lock the journal %s: %v.", path, err)
		}
		return nil
	}
	j, batches, err := openJournal(path)
	if err != nil {
		lock.Close()
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot open the journal: %v.", err)
	}
	j.lock = lock
	db.journal = j
	if err := db.replay(ctx, batches); err != nil {
		db.closeJournal()
		return err
	}
	return nil
}

func (db *DB) closeJournal() {
	if j := db.journal; j != nil {
		j.f.Close()
		j.lock.Close()
		db.journal = nil
	}
}
