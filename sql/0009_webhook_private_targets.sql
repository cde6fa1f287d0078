-- Whether an endpoint may reach private addresses, decided when it was saved: the operator's
-- own endpoints and those the platform key made for an organisation may; an organisation admin's
-- may not (unless TALLY_WEBHOOKS_ALLOW_PRIVATE). Deliveries check the address at every attempt.
ALTER TABLE webhook_endpoints ADD COLUMN private_allowed boolean NOT NULL DEFAULT false;
UPDATE webhook_endpoints SET private_allowed = true WHERE org_id IS NULL;
