-- The namespaces a flow's executions may reach: the scope of whoever
-- deployed the flow or started the execution, as "*" or patterns joined by
-- commas ("a.b,c.*"; "" for none). NULL: stored before scopes were, read as
-- unrestricted.
ALTER TABLE flows ADD COLUMN scope TEXT;
ALTER TABLE executions ADD COLUMN scope TEXT;
