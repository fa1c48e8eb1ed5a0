-- Every write's object has an intent now, not only a stream's (issue 11):
-- recorded while the object uploads, consumed in the transaction that writes
-- its metadata. Garbage collection takes stale intents instead of listing the
-- bucket, and a write whose intent it took cannot commit. The namespace leads
-- the key, as on PostgreSQL. One b-tree (WITHOUT ROWID, no index on the start:
-- the table holds only writes in flight), since every write adds and removes a row.
CREATE TABLE kv_intents_new (
	namespace  TEXT NOT NULL,
	object     TEXT NOT NULL,
	started_at BIGINT NOT NULL,
	PRIMARY KEY (namespace, object)
) WITHOUT ROWID;
INSERT INTO kv_intents_new (namespace, object, started_at)
	SELECT replace(substr(object, 1, instr(object, '/_kv/') - 1), '/', '.'), object, started_at FROM kv_intents;
DROP TABLE kv_intents;
ALTER TABLE kv_intents_new RENAME TO kv_intents;
