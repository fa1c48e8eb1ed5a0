-- KV metadata. Times are unix microseconds. Values never live here.
CREATE TABLE kv_entries (
	namespace   TEXT NOT NULL,
	key         TEXT NOT NULL,
	type        TEXT NOT NULL,
	object      TEXT NOT NULL,
	version     BIGINT NOT NULL,
	size        BIGINT NOT NULL,
	hash        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	expires_at  BIGINT,
	PRIMARY KEY (namespace, key)
);
CREATE UNIQUE INDEX kv_entries_object ON kv_entries (object);
CREATE INDEX kv_entries_expires ON kv_entries (expires_at) WHERE expires_at IS NOT NULL;

-- Objects no entry points to any more, waiting for garbage collection.
CREATE TABLE kv_garbage (
	object    TEXT PRIMARY KEY,
	queued_at BIGINT NOT NULL
);
CREATE INDEX kv_garbage_queued ON kv_garbage (queued_at);

-- A replaced or deleted entry's object is queued in the same transaction.
-- (NOT EXISTS rather than OR IGNORE: the outer statement's conflict policy
-- would override a trigger's.)
CREATE TRIGGER kv_entries_replaced AFTER UPDATE OF object ON kv_entries WHEN OLD.object <> NEW.object
BEGIN
	INSERT INTO kv_garbage (object, queued_at)
	SELECT OLD.object, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
	WHERE NOT EXISTS (SELECT 1 FROM kv_garbage WHERE object = OLD.object);
END;
CREATE TRIGGER kv_entries_deleted AFTER DELETE ON kv_entries
BEGIN
	INSERT INTO kv_garbage (object, queued_at)
	SELECT OLD.object, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
	WHERE NOT EXISTS (SELECT 1 FROM kv_garbage WHERE object = OLD.object);
END;
