-- Makes a Citus cluster of Tally's schema. Run on the coordinator, after `tally migrate` has
-- created the schema there and before any data is loaded:
--
--   psql "$COORDINATOR_URL" -v ON_ERROR_STOP=1 -f deploy/citus/distribute.sql
--
-- Two lists, and every table is in exactly one (Tests/TallyStoreTests/CitusLayoutTests.swift
-- reads the live schema against this file and fails otherwise):
--
-- * Reference tables, copied to every node: the catalog (plans, packs, operations), the test
--   clocks, the migrations' ledger, and the directory an organisation is found by before its
--   shard is known: `orgs` (by id, by external_id, which is unique across organisations),
--   `api_keys` (by the key's hash, platform keys have no organisation) and `webhook_endpoints`
--   (platform endpoints receive every organisation's events). All are small and written rarely.
--   Reference tables may refer to each other and distributed tables may refer to them; no
--   reference table refers to a distributed one (the test checks that too).
--
-- * Distributed tables, by org_id, all co-located: everything an organisation owns. Each has
--   org_id NOT NULL, org_id in its primary key and in every unique index, and org_id in every
--   foreign key to another distributed table (the test checks these), so every statement of a
--   spend, a renewal or a report touches one organisation's shard group.
--
-- Order matters: a reference table before the tables that refer to it; distributed tables
-- after the tables they refer to, each co-located with the first.

SELECT create_reference_table('schema_migrations');
SELECT create_reference_table('test_clocks');
SELECT create_reference_table('credit_packs');
SELECT create_reference_table('operations');
SELECT create_reference_table('catalog_version');
SELECT create_reference_table('plans');
SELECT create_reference_table('orgs');
SELECT create_reference_table('api_keys');
SELECT create_reference_table('webhook_endpoints');

SELECT create_distributed_table('credit_buckets', 'org_id');
SELECT create_distributed_table('ledger_entries', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('ledger_postings', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('idempotency_keys', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('reservations', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('subscriptions', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('usage_periods', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('usage_months', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('alert_firings', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('bucket_expiry_warnings', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('auto_topups', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('invoice_sequences', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('invoices', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('invoice_lines', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('events', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('webhook_deliveries', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('webhook_attempts', 'org_id', colocate_with => 'credit_buckets');
SELECT create_distributed_table('portal_sessions', 'org_id', colocate_with => 'credit_buckets');
