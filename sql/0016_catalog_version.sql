-- The operations' version: every change to the operations table moves it, in the change's own
-- transaction. Each request's context read brings the version along, so a replica may keep the
-- operations it priced with and use them again while the version stays; a change, from any
-- replica or `tally catalog load`, is seen by the next request everywhere (CatalogStore's
-- pricing cache). One row, reference data.
CREATE TABLE catalog_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO catalog_version (one, version) VALUES (true, 1);

CREATE FUNCTION tally_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER operations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON operations
    FOR EACH STATEMENT EXECUTE FUNCTION tally_catalog_changed();
