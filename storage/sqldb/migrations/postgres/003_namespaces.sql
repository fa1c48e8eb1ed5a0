-- Namespaces created explicitly (POST /api/v1/namespaces). Namespaces that
-- hold flows or KV entries exist without a row here. Times are unix microseconds.
CREATE TABLE namespaces (
	id         TEXT COLLATE "C" PRIMARY KEY,
	created_at BIGINT NOT NULL
);
