-- An execution that ended and whose Flow triggers have not been fired yet:
-- set in the statement that writes its terminal state, cleared once the
-- trigger loops have fired (or found nothing to fire), so an end is never
-- lost when the worker dies between saving it and firing.
ALTER TABLE executions ADD COLUMN end_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX executions_end_pending ON executions (ended_at) WHERE end_pending = 1;
