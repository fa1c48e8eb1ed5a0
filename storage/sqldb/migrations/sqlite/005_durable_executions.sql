-- Durable executions: the worker holding an execution, its heartbeat and a
-- claim number that fences a worker that lost its hold; kill requests; what
-- trigger created an execution (trigger_key makes a trigger fire once).
ALTER TABLE executions ADD COLUMN worker TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN heartbeat_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN claim BIGINT NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN kill_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN trigger_id TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN trigger_type TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN trigger_key TEXT;
CREATE UNIQUE INDEX executions_trigger_key ON executions (trigger_key);
CREATE INDEX executions_worker ON executions (worker) WHERE state IN ('CREATED', 'RUNNING');
CREATE INDEX executions_active ON executions (namespace, flow_id, started_at) WHERE state IN ('CREATED', 'RUNNING');

-- The trigger types of each flow, comma-separated, for the trigger loops.
ALTER TABLE flows ADD COLUMN triggers TEXT NOT NULL DEFAULT '';
