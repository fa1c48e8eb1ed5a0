-- KV history (issue 11). Every write and every delete of a key keeps a version
-- row, and appends a row to the namespace's change feed, in the same statement
-- as the entry (triggers). Objects of kept versions stay in the bucket: an
-- object becomes garbage when its version row is purged, no longer when the
-- entry moves on. Values never live here. Times are unix microseconds.
ALTER TABLE kv_entries ADD COLUMN writer TEXT NOT NULL DEFAULT '';
-- Set by DeleteEntry just before the delete, so the tombstone says who and when.
ALTER TABLE kv_entries ADD COLUMN deleted_by TEXT;
ALTER TABLE kv_entries ADD COLUMN deleted_at BIGINT;

CREATE TABLE kv_versions (
	namespace   TEXT NOT NULL,
	key         TEXT NOT NULL,
	version     BIGINT NOT NULL,
	change      TEXT NOT NULL, -- SET, or DELETE / EXPIRE for a tombstone
	type        TEXT NOT NULL,
	object      TEXT,          -- NULL for a tombstone
	size        BIGINT NOT NULL,
	hash        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	expires_at  BIGINT,
	writer      TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (namespace, key, version)
);
CREATE UNIQUE INDEX kv_versions_object ON kv_versions (object);
CREATE INDEX kv_versions_updated ON kv_versions (updated_at);
INSERT INTO kv_versions SELECT namespace, key, version, 'SET', type, object, size, hash, description,
	created_at, updated_at, expires_at, '' FROM kv_entries;

-- The change feed: seq is per namespace, gap-free and in commit order (SQLite
-- has one writer at a time). pruned is the highest seq no longer kept.
CREATE TABLE kv_change_seqs (
	namespace TEXT PRIMARY KEY,
	seq       BIGINT NOT NULL,
	pruned    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE kv_changes (
	namespace TEXT NOT NULL,
	seq       BIGINT NOT NULL,
	key       TEXT NOT NULL,
	change    TEXT NOT NULL, -- SET, DELETE or EXPIRE
	version   BIGINT NOT NULL,
	type      TEXT NOT NULL,
	writer    TEXT NOT NULL,
	at        BIGINT NOT NULL,
	PRIMARY KEY (namespace, seq)
);
CREATE INDEX kv_changes_at ON kv_changes (at);

-- A consumer's position in a namespace's feed (the KV trigger keeps one per
-- trigger), advanced in the same transaction as what it does with the changes.
CREATE TABLE kv_feed_positions (
	consumer  TEXT NOT NULL,
	namespace TEXT NOT NULL,
	seq       BIGINT NOT NULL,
	PRIMARY KEY (consumer, namespace)
);

DROP TRIGGER IF EXISTS kv_entries_replaced;
DROP TRIGGER IF EXISTS kv_entries_deleted;

-- (NOT EXISTS rather than OR IGNORE or an upsert: the outer statement's
-- conflict policy would override a trigger's.)
CREATE TRIGGER kv_entries_history_insert AFTER INSERT ON kv_entries
BEGIN
	INSERT INTO kv_versions VALUES (NEW.namespace, NEW.key, NEW.version, 'SET', NEW.type, NEW.object,
		NEW.size, NEW.hash, NEW.description, NEW.created_at, NEW.updated_at, NEW.expires_at, NEW.writer);
	INSERT INTO kv_change_seqs (namespace, seq) SELECT NEW.namespace, 0
		WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs WHERE namespace = NEW.namespace);
	UPDATE kv_change_seqs SET seq = seq + 1 WHERE namespace = NEW.namespace;
	INSERT INTO kv_changes SELECT NEW.namespace, seq, NEW.key, 'SET', NEW.version, NEW.type, NEW.writer, NEW.updated_at
		FROM kv_change_seqs WHERE namespace = NEW.namespace;
END;
CREATE TRIGGER kv_entries_history_update AFTER UPDATE OF object ON kv_entries WHEN OLD.object <> NEW.object
BEGIN
	INSERT INTO kv_versions VALUES (NEW.namespace, NEW.key, NEW.version, 'SET', NEW.type, NEW.object,
		NEW.size, NEW.hash, NEW.description, NEW.created_at, NEW.updated_at, NEW.expires_at, NEW.writer);
	INSERT INTO kv_change_seqs (namespace, seq) SELECT NEW.namespace, 0
		WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs WHERE namespace = NEW.namespace);
	UPDATE kv_change_seqs SET seq = seq + 1 WHERE namespace = NEW.namespace;
	INSERT INTO kv_changes SELECT NEW.namespace, seq, NEW.key, 'SET', NEW.version, NEW.type, NEW.writer, NEW.updated_at
		FROM kv_change_seqs WHERE namespace = NEW.namespace;
END;
CREATE TRIGGER kv_entries_history_delete AFTER DELETE ON kv_entries
BEGIN
	INSERT INTO kv_versions SELECT OLD.namespace, OLD.key, OLD.version + 1,
		CASE WHEN expired THEN 'EXPIRE' ELSE 'DELETE' END, OLD.type, NULL, 0, '', '', OLD.created_at,
		COALESCE(OLD.deleted_at, now_us), NULL,
		CASE WHEN expired THEN 'expiry' ELSE COALESCE(OLD.deleted_by, 'purge') END
		FROM (SELECT now_us, OLD.deleted_by IS NULL AND OLD.expires_at <= now_us AS expired
			FROM (SELECT CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) AS now_us));
	INSERT INTO kv_change_seqs (namespace, seq) SELECT OLD.namespace, 0
		WHERE NOT EXISTS (SELECT 1 FROM kv_change_seqs WHERE namespace = OLD.namespace);
	UPDATE kv_change_seqs SET seq = seq + 1 WHERE namespace = OLD.namespace;
	INSERT INTO kv_changes SELECT v.namespace, c.seq, v.key, v.change, v.version, v.type, v.writer, v.updated_at
		FROM kv_versions v, kv_change_seqs c
		WHERE v.namespace = OLD.namespace AND v.key = OLD.key AND v.version = OLD.version + 1 AND c.namespace = OLD.namespace;
END;

-- A purged version's object is queued as garbage in the same transaction.
CREATE TRIGGER kv_versions_purged AFTER DELETE ON kv_versions WHEN OLD.object IS NOT NULL
BEGIN
	INSERT INTO kv_garbage (object, queued_at)
	SELECT OLD.object, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
	WHERE NOT EXISTS (SELECT 1 FROM kv_garbage WHERE object = OLD.object);
END;

-- A streamed write's object, from before its upload starts until its
-- metadata commits: garbage collection never removes such an object while the
-- intent is younger than the grace period, whatever the object's
-- Last-Modified says (a multipart upload's is its start), and removes the
-- object of an intent older than that which never committed.
CREATE TABLE kv_intents (
	object     TEXT PRIMARY KEY,
	started_at BIGINT NOT NULL
);
CREATE INDEX kv_intents_started ON kv_intents (started_at);
