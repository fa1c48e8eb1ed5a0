-- Flows, executions, task runs and logs. Times are unix microseconds.
-- Inputs and outputs of executions live in object storage, never here.
CREATE TABLE flows (
	namespace  TEXT COLLATE "C" NOT NULL,
	id         TEXT COLLATE "C" NOT NULL,
	revision   BIGINT NOT NULL,
	source     TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (namespace, id)
);

CREATE TABLE executions (
	id            TEXT PRIMARY KEY,
	namespace     TEXT COLLATE "C" NOT NULL,
	flow_id       TEXT COLLATE "C" NOT NULL,
	flow_revision BIGINT NOT NULL DEFAULT 0,
	state         TEXT NOT NULL,
	labels        TEXT NOT NULL DEFAULT '{}',
	error         TEXT NOT NULL DEFAULT '',
	started_at    BIGINT NOT NULL,
	ended_at      BIGINT
);
CREATE INDEX executions_flow ON executions (namespace, flow_id, started_at DESC);
CREATE INDEX executions_started ON executions (started_at DESC);

-- attempts is a JSON array of {state, start, end} with times in microseconds.
CREATE TABLE task_runs (
	id           TEXT PRIMARY KEY,
	execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
	seq          INTEGER NOT NULL,
	task_id      TEXT NOT NULL,
	parent_id    TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL,
	attempts     TEXT NOT NULL DEFAULT '[]',
	error        TEXT NOT NULL DEFAULT '',
	started_at   BIGINT NOT NULL,
	ended_at     BIGINT
);
CREATE INDEX task_runs_execution ON task_runs (execution_id, seq);

CREATE TABLE execution_logs (
	id           BIGSERIAL PRIMARY KEY,
	execution_id TEXT NOT NULL,
	task_id      TEXT NOT NULL DEFAULT '',
	task_run_id  TEXT NOT NULL DEFAULT '',
	time         BIGINT NOT NULL,
	level        TEXT NOT NULL,
	message      TEXT NOT NULL
);
CREATE INDEX execution_logs_execution ON execution_logs (execution_id, id);
