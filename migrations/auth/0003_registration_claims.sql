-- A pending registration is no longer locked for the length of its calls to
-- users and roles (that held a pooled connection across two RPCs). Whoever
-- completes or compensates it claims it for a short lease instead, and each
-- later step only applies while that claim still holds.
ALTER TABLE credentials
    ADD COLUMN claim_token    uuid,
    ADD COLUMN claimed_until  timestamptz;
