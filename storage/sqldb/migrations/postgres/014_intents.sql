-- Every write's object has an intent now, not only a stream's (issue 11):
-- recorded while the object uploads, consumed by the statement that writes
-- its metadata. Garbage collection takes stale intents instead of listing the
-- bucket, and a write whose intent it took cannot commit. The namespace leads
-- the key so that the intent lives beside its entry when sharded by namespace.
ALTER TABLE kv_intents ADD COLUMN namespace TEXT NOT NULL DEFAULT '';
UPDATE kv_intents SET namespace = replace(split_part(object, '/_kv/', 1), '/', '.');
ALTER TABLE kv_intents ALTER COLUMN namespace DROP DEFAULT;
ALTER TABLE kv_intents DROP CONSTRAINT kv_intents_pkey;
ALTER TABLE kv_intents ADD PRIMARY KEY (namespace, object);
