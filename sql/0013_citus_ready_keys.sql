-- Citus-ready keys: every unique key of a table distributed by organisation includes org_id
-- (deploy/citus/distribute.sql; CitusLayoutTests reads the live schema against it). An event
-- belongs to one organisation, so the rows this allows are exactly those it allowed. org_id
-- comes last: an index led by org_id would compete with the primary key in the foreign-key
-- checks of webhook_attempts (see 0007).
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_endpoint_id_event_id_key;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_one_per_endpoint UNIQUE (endpoint_id, event_id, org_id);
