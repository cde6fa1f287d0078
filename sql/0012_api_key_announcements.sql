-- Every change to a key (its revocation, its deletion with its organisation) is announced on the
-- 'tally_api_keys' channel with the key's hash in hex, when the change commits. Each replica
-- caches recognised keys only while it listens there, and drops a key on its announcement: a
-- revocation takes effect at once everywhere (see APIKeyCache).
CREATE FUNCTION api_keys_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tally_api_keys', encode(OLD.key_hash, 'hex'));
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_announce_change AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_announce_change();
