-- What the retention job looks for, found through indexes in bounded batches (issue: storage must
-- not only grow): events by age, finished deliveries by age, deliveries by event (an event still
-- owed to an endpoint stays), settled holds by settlement time.
CREATE INDEX events_by_age ON events (created_at);
CREATE INDEX webhook_deliveries_finished_by_age ON webhook_deliveries (created_at) WHERE status <> 'pending';
-- event_id first: an index led by org_id would compete with the foreign-key checks (see 0007).
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id, org_id);
CREATE INDEX reservations_settled_by_age ON reservations (settled_at) WHERE status <> 'active';
