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
	namespace   TEXT COLLATE "C" NOT NULL,
	key         TEXT COLLATE "C" NOT NULL,
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

-- The change feed: seq is per namespace, gap-free and in commit order (the
-- namespace's counter row stays locked until the writing transaction ends).
-- pruned is the highest seq no longer kept.
CREATE TABLE kv_change_seqs (
	namespace TEXT COLLATE "C" PRIMARY KEY,
	seq       BIGINT NOT NULL,
	pruned    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE kv_changes (
	namespace TEXT COLLATE "C" NOT NULL,
	seq       BIGINT NOT NULL,
	key       TEXT COLLATE "C" NOT NULL,
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
	namespace TEXT COLLATE "C" NOT NULL,
	seq       BIGINT NOT NULL,
	PRIMARY KEY (consumer, namespace)
);

DROP TRIGGER IF EXISTS kv_entries_replaced ON kv_entries;
DROP TRIGGER IF EXISTS kv_entries_deleted ON kv_entries;

CREATE FUNCTION kv_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	now_us BIGINT := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
	s      BIGINT;
	r      kv_entries%ROWTYPE;
	ch     TEXT := 'SET';
	ver    BIGINT;
	who    TEXT;
	at     BIGINT;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD;
		ver := OLD.version + 1;
		IF OLD.deleted_by IS NULL AND OLD.expires_at <= now_us THEN
			ch := 'EXPIRE'; who := 'expiry';
		ELSE
			ch := 'DELETE'; who := COALESCE(OLD.deleted_by, 'purge');
		END IF;
		at := COALESCE(OLD.deleted_at, now_us);
		INSERT INTO kv_versions VALUES (OLD.namespace, OLD.key, ver, ch, OLD.type, NULL, 0, '', '',
			OLD.created_at, at, NULL, who);
	ELSE
		r := NEW; ver := NEW.version; who := NEW.writer; at := NEW.updated_at;
		INSERT INTO kv_versions VALUES (NEW.namespace, NEW.key, NEW.version, 'SET', NEW.type, NEW.object,
			NEW.size, NEW.hash, NEW.description, NEW.created_at, NEW.updated_at, NEW.expires_at, NEW.writer);
	END IF;
	INSERT INTO kv_change_seqs AS c (namespace, seq) VALUES (r.namespace, 1)
		ON CONFLICT (namespace) DO UPDATE SET seq = c.seq + 1 RETURNING seq INTO s;
	INSERT INTO kv_changes VALUES (r.namespace, s, r.key, ch, ver, r.type, who, at);
	RETURN NULL;
END $$;
CREATE TRIGGER kv_entries_history_insert AFTER INSERT ON kv_entries
	FOR EACH ROW EXECUTE FUNCTION kv_record_change();
CREATE TRIGGER kv_entries_history_update AFTER UPDATE OF object ON kv_entries
	FOR EACH ROW WHEN (OLD.object IS DISTINCT FROM NEW.object) EXECUTE FUNCTION kv_record_change();
CREATE TRIGGER kv_entries_history_delete AFTER DELETE ON kv_entries
	FOR EACH ROW EXECUTE FUNCTION kv_record_change();

-- A purged version's object is queued as garbage in the same transaction.
CREATE TRIGGER kv_versions_purged AFTER DELETE ON kv_versions
	FOR EACH ROW WHEN (OLD.object IS NOT NULL) EXECUTE FUNCTION kv_queue_garbage();

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
