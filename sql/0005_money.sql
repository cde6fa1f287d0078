-- Money: organisation settings, purchases, overage, auto top-up, and invoices that can never be
-- edited once open.

-- Settings an organisation's admins change. Overage protection is on by default: a spend that
-- the credits do not cover is refused unless the organisation turns it off (and its plan allows
-- overage).
ALTER TABLE orgs
    ADD COLUMN overage_protection   boolean NOT NULL DEFAULT true,
    ADD COLUMN overage_cap_credits  numeric(20,4) CHECK (overage_cap_credits >= 0),
    ADD COLUMN auto_topup_enabled   boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_topup_threshold numeric(20,4) CHECK (auto_topup_threshold >= 0),
    ADD COLUMN auto_topup_pack      text REFERENCES credit_packs (code),
    ADD COLUMN last_auto_topup_at   timestamptz,
    -- Percentages of the period's allocation at which usage.threshold_reached fires.
    ADD COLUMN alert_thresholds_percent integer[] NOT NULL DEFAULT '{80,100,110}',
    ADD CHECK (NOT auto_topup_enabled OR (auto_topup_threshold IS NOT NULL AND auto_topup_pack IS NOT NULL));

-- Credits used and overage incurred in each subscription period, kept by every spend in the
-- same statement (after the buckets it locks), so that caps and alerts need no ledger scans.
CREATE TABLE usage_periods (
    org_id          uuid NOT NULL REFERENCES orgs (org_id),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    subscription_id uuid NOT NULL,
    allocation      numeric(20,4) NOT NULL CHECK (allocation >= 0),
    used_credits    numeric(20,4) NOT NULL DEFAULT 0,
    overage_credits numeric(20,4) NOT NULL DEFAULT 0 CHECK (overage_credits >= 0),
    PRIMARY KEY (org_id, period_start),
    CHECK (period_end > period_start)
);

-- A usage entry with overage names the (draft) overage invoice it added to, so that a reversal
-- can take overage back while it is not yet invoiced.
ALTER TABLE ledger_entries ADD COLUMN invoice_id uuid;

-- A draft is numbered when it opens; one voided as a draft never had a number.
ALTER TABLE invoices DROP CONSTRAINT invoices_check, DROP CONSTRAINT invoices_check1;
ALTER TABLE invoices ADD CHECK ((number IS NULL) = (issued_at IS NULL)),
                     ADD CHECK (status <> 'draft' OR number IS NULL),
                     ADD CHECK (status NOT IN ('open', 'paid') OR number IS NOT NULL);
-- One accumulating overage draft per subscription period.
CREATE UNIQUE INDEX invoices_one_overage_draft_per_period ON invoices (org_id, subscription_id, period_start)
    WHERE kind = 'overage' AND status = 'draft';

-- An invoice is never edited after it is open: lines change only on drafts, and an open invoice
-- only moves to paid or void (recording when and the payment reference).
CREATE FUNCTION tally_invoice_lines_draft_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    invoice_status text;
BEGIN
    SELECT status INTO invoice_status FROM invoices
    WHERE org_id = coalesce(NEW.org_id, OLD.org_id) AND invoice_id = coalesce(NEW.invoice_id, OLD.invoice_id);
    -- NULL: the invoice is being written in this same statement, lines and all.
    IF invoice_status IS NOT NULL AND invoice_status <> 'draft' THEN
        RAISE EXCEPTION 'lines of a % invoice cannot change', invoice_status USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN coalesce(NEW, OLD);
END
$$;
CREATE TRIGGER invoice_lines_draft_only BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION tally_invoice_lines_draft_only();

CREATE FUNCTION tally_invoice_immutable_when_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'invoices are never deleted; void them' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'draft' AND (NEW.total <> OLD.total OR NEW.currency <> OLD.currency OR NEW.number IS DISTINCT FROM OLD.number
        OR NEW.kind <> OLD.kind OR NEW.period_start IS DISTINCT FROM OLD.period_start OR NEW.issued_at IS DISTINCT FROM OLD.issued_at) THEN
        RAISE EXCEPTION 'a % invoice cannot be edited', OLD.status USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status IN ('paid', 'void') AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'a % invoice is final', OLD.status USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invoices_immutable_when_open BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION tally_invoice_immutable_when_open();

-- Auto top-up attempts, successful or not: reported, never retried blindly.
CREATE TABLE auto_topups (
    org_id       uuid NOT NULL REFERENCES orgs (org_id),
    topup_id     uuid NOT NULL,
    pack_code    text NOT NULL,
    status       text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    error        text,
    invoice_id   uuid,
    bucket_id    uuid,
    triggered_by uuid,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, topup_id)
);
CREATE INDEX auto_topups_by_org ON auto_topups (org_id, created_at DESC);
