-- The statements that write an entry now write its version row and its change
-- themselves, in CTEs (storage/sqldb/kv.go): PostgreSQL runs them in the same
-- plan, where the row trigger cost a PL/pgSQL call and three SPI statements per
-- write. Deletes, rarer, keep the trigger.
DROP TRIGGER kv_entries_history_insert ON kv_entries;
DROP TRIGGER kv_entries_history_update ON kv_entries;
