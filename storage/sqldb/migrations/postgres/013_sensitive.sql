-- Sensitive entries (issue 12): the flag says the value object is encrypted
-- (AES-256-GCM) and the value is masked wherever it could leak. It travels
-- with every version, so the history reads an encrypted version back right.
ALTER TABLE kv_entries ADD COLUMN sensitive BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE kv_versions ADD COLUMN sensitive BOOLEAN NOT NULL DEFAULT FALSE;

-- 010's function, with the flag copied into each version (a tombstone keeps
-- the flag of what it deleted).
CREATE OR REPLACE FUNCTION kv_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
			OLD.created_at, at, NULL, who, OLD.sensitive);
	ELSE
		r := NEW; ver := NEW.version; who := NEW.writer; at := NEW.updated_at;
		INSERT INTO kv_versions VALUES (NEW.namespace, NEW.key, NEW.version, 'SET', NEW.type, NEW.object,
			NEW.size, NEW.hash, NEW.description, NEW.created_at, NEW.updated_at, NEW.expires_at, NEW.writer, NEW.sensitive);
	END IF;
	INSERT INTO kv_change_seqs AS c (namespace, seq) VALUES (r.namespace, 1)
		ON CONFLICT (namespace) DO UPDATE SET seq = c.seq + 1 RETURNING seq INTO s;
	INSERT INTO kv_changes VALUES (r.namespace, s, r.key, ch, ver, r.type, who, at);
	RETURN NULL;
END $$;
