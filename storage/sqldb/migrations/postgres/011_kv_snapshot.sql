-- An execution's kvSnapshot instant (unix microseconds), so that a worker
-- resuming it reads the store as the execution started.
ALTER TABLE executions ADD COLUMN kv_snapshot BIGINT;
